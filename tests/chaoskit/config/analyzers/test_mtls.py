from tests.chaoskit.config.helpers import check, doc


def test_istio_mutual_anywhere_in_a_destination_rule_is_a_note():
    v = check(
        doc(
            "DestinationRule",
            "ratings",
            """
        host: ratings
        trafficPolicy:
          tls: {mode: ISTIO_MUTUAL}
          portLevelSettings: [{port: {number: 9080}, tls: {mode: ISTIO_MUTUAL}}]
        subsets:
        - {name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
        - {name: plain, labels: {version: v1}, trafficPolicy: {tls: {mode: DISABLE}}}
    """,
        )
    )
    assert v.ok and not v.issues.warnings
    assert [(i.path, i.code) for i in v.issues.notes] == [
        ("spec.trafficPolicy.tls.mode", ""),
        ("spec.trafficPolicy.portLevelSettings[0].tls.mode", ""),
        ("spec.subsets[0].trafficPolicy.tls.mode", ""),
    ]
    assert all("not emulated" in i.message for i in v.issues.notes)


def test_peer_authentication_is_known_and_noted_not_warned():
    v = check(
        doc(
            "PeerAuthentication",
            "default",
            "mtls: {mode: STRICT}",
            api="security.istio.io/v1",
        )
    )
    assert v.ok and not v.issues.warnings
    (note,) = v.issues.notes
    assert note.path == "kind" and "mutual TLS is not emulated" in note.message
