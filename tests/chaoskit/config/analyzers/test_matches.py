"""Table tests adapted from istio/istio pkg/config/analysis/analyzers/testdata/
virtualservice_dupmatches.yaml and virtualservice_overlappingmatches.yaml (expectations from
analyzers_test.go, case "dupmatches", HTTP routes); destinations use the test registry's services.
Rules mirrored: pkg/config/validation/validation.go ``analyzeUnreachableHTTPRules``."""

import pytest

from chaoskit.config.analyzers.matches import implies
from chaoskit.config.match import StringMatch
from tests.chaoskit.config.helpers import check, doc


def vs(name: str, http: str) -> str:
    return doc("VirtualService", name, "hosts: [sample.baz.svc.cluster.local]\nhttp:\n" + http)


TO_REVIEWS = "  route: [{destination: {host: reviews}}]\n"
TO_RATINGS = "  route: [{destination: {host: ratings}}]\n"


def rule(*matches: str, to: str = TO_REVIEWS) -> str:
    return "- match:\n" + "".join(f"  - {m}\n" for m in matches) + to


CASES = {
    # dupmatches: two rules without match; the second can never be used
    "sample-foo-cluster01": (
        "- fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}\n"
        + TO_REVIEWS
        + "- mirror: {host: ratings}\n"
        + TO_RATINGS,
        [("spec.http[1]", "IST0130")],
    ),
    # chaoskit: an entry that is only ``prefix: /`` is a catch-all too
    "prefix-slash-catch-all": (
        rule("{uri: {prefix: /}}") + "- route: [{destination: {host: ratings}}]\n",
        [("spec.http[1]", "IST0130")],
    ),
    # dupmatches: the same match (names aside) twice: IST0131 on the entry, IST0130 on the rule
    "duplicate-match": (
        rule("{name: prefix /api/v1/products, uri: {prefix: /api/v1/products}}")
        + rule("{uri: {prefix: /api/v1/products}}", to=TO_RATINGS),
        [("spec.http[1].match[0]", "IST0131"), ("spec.http[1]", "IST0130")],
    ),
    # dupmatches: one entry duplicated, the other (/potato) still used
    "almost-duplicate-match": (
        rule("{uri: {prefix: /api/v1/products}}")
        + rule(
            "{name: prefix /api/v1/products, uri: {prefix: /api/v1/products}}",
            "{name: prefix /potato, uri: {prefix: /potato}}",
            to=TO_RATINGS,
        ),
        [("spec.http[1].match[0]", "IST0131")],
    ),
    # overlappingmatches: a longer prefix (with GET) after a shorter one (any method)
    "non-method-get": (
        rule(
            "{uri: {prefix: /api/v1/product}}",
            "{uri: {prefix: /api/v1/products}, method: {exact: GET}}",
        ),
        [("spec.http[0].match[1]", "IST0131")],
    ),
    # overlappingmatches: exact "/" after prefix "/": only prefix entries are compared
    "uri-with-prefix-exact": (
        rule("{uri: {prefix: /}}", "{uri: {exact: /}, method: {exact: GET}}"),
        [],
    ),
    "overlapping-in-single-match": (
        rule(
            "{uri: {prefix: /api/v1/product}, method: {exact: GET}}",
            "{uri: {prefix: /api/v1/products}, method: {exact: GET}}",
        ),
        [("spec.http[0].match[1]", "IST0131")],
    ),
    # (chaoskit also reports the rule, IST0130: its only entry is covered; Istio counts only
    # exact duplicates for that)
    "overlapping-in-two-matches": (
        rule("{uri: {prefix: /api/v1/product}, method: {exact: GET}}")
        + rule("{uri: {prefix: /api/v1/products}, method: {exact: GET}}", to=TO_RATINGS),
        [("spec.http[1].match[0]", "IST0131"), ("spec.http[1]", "IST0130")],
    ),
    # overlappingmatches: only the GET entry is covered; the POST one is still used
    "overlapping-mathes-with-different-methods": (
        rule("{uri: {prefix: /api/v1/prod}, method: {exact: GET}}")
        + rule(
            "{uri: {prefix: /api/v1/product}, method: {exact: GET}}",
            "{uri: {prefix: /api/v1/products}, method: {exact: POST}}",
            to=TO_RATINGS,
        ),
        [("spec.http[1].match[0]", "IST0131")],
    ),
    # chaoskit: Istio's textual comparison would report this (same method text), but the earlier
    # entry only takes one caller's requests, so the later one is still used
    "narrowed-by-source-labels": (
        rule("{uri: {prefix: /api}, sourceLabels: {app: productpage}}")
        + rule("{uri: {prefix: /api/v1}}", to=TO_RATINGS),
        [],
    ),
    # chaoskit: the same prefix with an extra condition is covered (Istio skips equal prefixes)
    "same-prefix-narrower": (
        rule("{uri: {prefix: /api}}")
        + rule("{uri: {prefix: /api}, headers: {end-user: {exact: jason}}}", to=TO_RATINGS),
        [("spec.http[1].match[0]", "IST0131"), ("spec.http[1]", "IST0130")],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unreachable_rules_and_ineffective_matches(name: str) -> None:
    http, expected = CASES[name]
    v = check(vs(name, http))
    assert v.ok, [str(i) for i in v.issues.errors]
    found = [(i.path, i.code) for i in v.issues.warnings if i.code in ("IST0130", "IST0131")]
    assert found == expected


def test_message_for_a_rule_after_a_catch_all() -> None:
    v = check(vs("c", CASES["sample-foo-cluster01"][0]))
    assert [i.message for i in v.issues.warnings if i.code == "IST0130"] == [
        "rule is unreachable: http[0] before it matches every request"
    ]


def test_messages_name_the_earlier_entry() -> None:
    v = check(vs("m", CASES["overlapping-in-two-matches"][0] + CASES["duplicate-match"][0]))
    texts = [i.message for i in v.issues.warnings if i.code == "IST0131"]
    assert texts[0] == (
        "match is never used: http[0].match[0] (prefix '/api/v1/product') before it matches "
        "every request it matches (prefix '/api/v1/products')"
    )
    assert "match is never used: it duplicates http[2].match[0]" in texts


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (StringMatch("prefix", "/a"), StringMatch("exact", "/a/b"), True),
        (StringMatch("prefix", "/a/b"), StringMatch("prefix", "/a"), False),
        (StringMatch("exact", "/a"), StringMatch("prefix", "/a"), False),
        (StringMatch("present"), StringMatch("regex", "x.*"), True),
        (StringMatch("regex", "x.*"), StringMatch("exact", "xy"), False),
        (StringMatch("prefix", "/A", ignore_case=True), StringMatch("prefix", "/a/b"), True),
        (StringMatch("prefix", "/a"), StringMatch("prefix", "/a/b", ignore_case=True), False),
        (None, StringMatch("exact", "x"), True),
        (StringMatch("exact", "x"), None, False),
    ],
)
def test_implies(a, b, expected) -> None:
    assert implies(a, b) is expected


# -- tcp and tls: virtualservice_dupmatches.yaml's TCP and TLS cases (analyzeUnreachableTCPRules,
# analyzeUnreachableTLSRules); destinations use the registry's reviews, the gateway is declared.

TCP_GATEWAY = doc(
    "Gateway",
    "tcp-echo-gateway",
    "selector: {istio: ingressgateway}\n"
    "servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ['*']}]",
)


def tcp_vs(name: str, *rules: str) -> str:
    body = "hosts: ['*']\ngateways: [tcp-echo-gateway]\ntcp:\n" + "".join(rules)
    return doc("VirtualService", name, body)


def tcp_rule(subset: str, *ports: int) -> str:
    match = "  match: [" + ", ".join(f"{{port: {p}}}" for p in ports) + "]\n" if ports else ""
    return (
        "- route: [{destination: {host: reviews, port: {number: 9080}, subset: "
        + subset
        + "}}]\n"
        + match
    )


def tls_vs(name: str, hosts: str, *matches: str) -> str:
    first = hosts.partition(",")[0]
    rules = "".join(
        f"- match: [{m}]\n  route: [{{destination: {{host: {first}}}}}]\n" for m in matches
    )
    return doc("VirtualService", name, f"hosts: [{hosts}]\ntls:\n{rules}", namespace="none")


SNI = "{port: 2443, sniHosts: [www1.googleapis.com]}"
SNI_EX = "{port: 2443, sniHosts: [www1.example.com]}"

L4_CASES = {
    "duplicate-tcp-match": (
        tcp_vs("d", tcp_rule("v1", 31400), tcp_rule("v2", 31400)),
        [("spec.tcp[1].match[0]", "IST0131"), ("spec.tcp[1]", "IST0130")],
    ),
    "duplicate-empty-tcp": (
        tcp_vs("d", tcp_rule("v1"), tcp_rule("v2")),
        [("spec.tcp[1]", "IST0130")],
    ),
    "almost-duplicate-tcp-match": (
        tcp_vs("d", tcp_rule("v1", 31400), tcp_rule("v2", 31400, 31401)),
        [("spec.tcp[1].match[0]", "IST0131")],
    ),
    "tls-routing": (
        tls_vs("t", "www1.googleapis.com, api1.facebook.com", SNI, SNI),
        [("spec.tls[1].match[0]", "IST0131"), ("spec.tls[1]", "IST0130")],
    ),
    "tls-routing-almostmatch": (
        tls_vs(
            "t",
            "www1.example.com",
            SNI_EX,
            SNI_EX + ", {port: 8443, sniHosts: [www1.example.com]}",
        ),
        [("spec.tls[1].match[0]", "IST0131")],
    ),
}


@pytest.mark.parametrize("name", list(L4_CASES))
def test_tcp_and_tls_duplicates(name: str) -> None:
    text, expected = L4_CASES[name]
    v = check(TCP_GATEWAY, text)
    assert v.ok, [str(i) for i in v.issues.errors]
    found = [(i.path, i.code) for i in v.issues.warnings if i.code in ("IST0130", "IST0131")]
    assert found == expected
