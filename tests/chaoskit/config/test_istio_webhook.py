"""Table tests drawn from Istio's validation webhook: rules that only run when a related field
is set, and cases where Istio is more lenient than chaoskit used to be.

Each table names the istio/istio function it mirrors (``pkg/config/validation/validation.go``,
``virtualservice.go``, ``agent/validation.go``) and the table test the cases come from
(``validation_test.go``, ``virtualservice_test.go``). Rows are single-resource: what the webhook
sees, without the cross-resource checks of ``chaoskit validate``.
"""

from __future__ import annotations

import pytest

from chaoskit.config.loader import LoadResult, load_text
from tests.chaoskit.config.helpers import doc

R = "route: [{destination: {host: reviews}}]"
GW = "gateways: [ns1/gateway]"


def vs(body: str) -> str:
    return doc("VirtualService", "vs", body)


def load(text: str) -> LoadResult:
    return load_text(text, "t.yaml")


def found(items: list[tuple[str, str]], path: str, fragment: str) -> bool:
    return any(p == path and fragment in m for p, m in items)


def errors(text: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in load(text).issues.errors]


def warnings(text: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in load(text).issues.warnings]


# -- rejected by Istio ------------------------------------------------------------------------

INVALID = [
    # virtualservice.go validateHTTPRoute: mirrorPercentage range even without a mirror.
    (
        vs(f"hosts: [reviews]\nhttp:\n- {R}\n  mirrorPercentage: {{value: 101}}"),
        "spec.http[0].mirrorPercentage.value",
        "not in [0, 100]",
    ),
    (
        vs(f"hosts: [reviews]\nhttp:\n- {R}\n  mirrorPercentage: {{value: -1}}"),
        "spec.http[0].mirrorPercentage.value",
        "not in [0, 100]",
    ),
    (
        vs(f"hosts: [reviews]\nhttp:\n- {R}\n  mirrorPercent: 101"),
        "spec.http[0].mirrorPercent",
        "larger than 100",
    ),
    # agent/validation.go ValidateHTTPRetry: retry settings with attempts 0.
    (
        vs(
            f"hosts: [reviews]\nhttp:\n- {R}\n  retries: {{attempts: 0, retryRemoteLocalities: true}}"
        ),
        "spec.http[0].retries",
        "attempts are set to 0",
    ),
    # validation.go validatePortSelector: destination port 0.
    (
        vs("hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, port: {number: 0}}}]"),
        "spec.http[0].route[0].destination.port.number",
        "less than 1",
    ),
    # validation.go ValidateVirtualService: delegate (no hosts) restrictions.
    (vs(f"{GW}\nhttp:\n- {R}"), "spec.gateways", "delegate virtual service must not have gate"),
    (vs("tcp:\n- route: [{destination: {host: reviews}}]"), "spec", "must not have tcp or tls"),
    # virtualservice.go validateHTTPRouteConflict: a delegate's route cannot delegate again.
    (vs("http:\n- delegate: {name: x}"), "spec.http[0].delegate", "cannot delegate further"),
    # validation.go validateSniHost (TestValidateTLSRoute): subset of the VS hosts, valid names.
    (
        vs("hosts: [reviews]\ntls:\n- match: [{sniHosts: [foo.com]}]\n  " + R),
        "spec.tls[0].match[0].sniHosts",
        "not a compatible subset",
    ),
    (
        vs("hosts: ['*.foo.com']\ntls:\n- match: [{sniHosts: ['*.com']}]\n  " + R),
        "spec.tls[0].match[0].sniHosts",
        "not a compatible subset",
    ),
    (
        vs("hosts: ['*.foo.com']\ntls:\n- match: [{sniHosts: ['a.*.foo.com']}]\n  " + R),
        "spec.tls[0].match[0].sniHosts",
        "wildcards are only allowed in the leading label",
    ),
    # validation.go ValidateVirtualService: JWT-claim routing only on gateways.
    (
        vs(
            f"hosts: [reviews]\nhttp:\n- match: [{{headers: {{'@request.auth.claims.g': {{exact: a}}}}}}]\n  {R}"
        ),
        "spec.http[0].match[0]",
        "JWT claim based routing",
    ),
    (
        vs(
            "hosts: [reviews]\ngateways: [mesh, ns1/gw]\nhttp:\n- match: [{withoutHeaders: "
            f"{{'@request.auth.claims[g]': {{exact: a}}}}}}]\n  {R}"
        ),
        "spec.http[0].match[0]",
        "JWT claim based routing",
    ),
    # validation.go validateAllowOrigins: an empty CORS origin.
    (
        vs(f"hosts: [reviews]\nhttp:\n- {R}\n  corsPolicy: {{allowOrigins: [{{exact: ''}}]}}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "non-empty exact, prefix or regex",
    ),
    (
        vs(f"hosts: [reviews]\nhttp:\n- {R}\n  corsPolicy: {{allowOrigins: [{{}}]}}"),
        "spec.http[0].corsPolicy.allowOrigins[0]",
        "non-empty exact, prefix or regex",
    ),
    # validation.go validateRouteDestinations: TCP/TLS weights all 0.
    (
        vs(
            "hosts: [reviews]\ntcp:\n- route: [{destination: {host: reviews}, weight: 0}, "
            "{destination: {host: ratings}, weight: 0}]"
        ),
        "spec.tcp[0].route",
        "total destination weight = 0",
    ),
    (
        vs(
            "hosts: [reviews]\ntls:\n- match: [{sniHosts: [reviews]}]\n  route: [{destination: "
            "{host: reviews}}, {destination: {host: ratings}}]"
        ),
        "spec.tls[0].route",
        "total destination weight = 0",
    ),
    # validation.go validateExportTo (TestValidateExportTo): "." is the own namespace.
    (
        vs(f"hosts: [reviews]\nexportTo: [default, '.']\nhttp:\n- {R}"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo: . and current namespace default",
    ),
    (
        vs(f"hosts: [reviews]\nexportTo: ['.', default]\nhttp:\n- {R}"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo for entry default",
    ),
    (vs(f"hosts: [reviews]\nexportTo: ['~']\nhttp:\n- {R}"), "spec.exportTo[0]", "not allowed"),
    (
        doc("DestinationRule", "dr", "host: reviews\nexportTo: ['.', default]"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo",
    ),
    (
        doc(
            "ServiceEntry",
            "se",
            "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\n"
            "exportTo: [default, '.']",
        ),
        "spec.exportTo[1]",
        ". and current namespace default",
    ),
    # virtualservice.go validateHTTPRouteMatchRequest: a null header match.
    (
        vs(f"hosts: [reviews]\nhttp:\n- match: [{{headers: {{foo: null}}}}]\n  {R}"),
        "spec.http[0].match[0].headers.foo",
        "header match foo cannot be null",
    ),
    # validation.go validateTLSOptions: every tlsCertificates entry needs a certificate.
    (
        doc(
            "Gateway",
            "gw",
            "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, tlsCertificates: [{privateKey: /k}]}",
        ),
        "spec.servers[0].tls.tlsCertificates[0]",
        "requires a server certificate",
    ),
    # agent/validation.go ValidateTLS: SIMPLE + credentialName + insecureSkipVerify.
    (
        doc(
            "DestinationRule",
            "dr",
            "host: reviews\ntrafficPolicy:\n  tls: {mode: SIMPLE, credentialName: c, "
            "insecureSkipVerify: true}",
        ),
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "credentialName",
    ),
    # agent/validation.go ValidateWildcardDomain: what stays invalid.
    (vs(f"hosts: ['foo.*']\nhttp:\n- {R}"), "spec.hosts", "wildcards are only allowed"),
    (vs(f"hosts: ['a_b.com']\nhttp:\n- {R}"), "spec.hosts", "not a valid DNS name"),
    (vs(f"hosts: [foo.123]\nhttp:\n- {R}"), "spec.hosts", "cannot be all-numeric"),
    (
        vs(f"hosts: ['outbound_.80_._.a.com']\n{GW}\nhttp:\n- {R}"),
        "spec.hosts",
        "not a valid DNS name",
    ),
    (
        vs(
            "hosts: ['outbound_.x_._.a.com']\n" + GW + "\ntls:\n- match: [{sniHosts: "
            "['outbound_.x_._.a.com']}]\n  " + R
        ),
        "spec.hosts",
        "port 'x' invalid",
    ),
    # validation.go validateHTTPRedirect: a uri match that is not a prefix.
    (
        vs(
            "hosts: [reviews]\nhttp:\n- match: [{uri: {exact: /a}}]\n  redirect: {prefixRewrite: /x}"
        ),
        "spec.http[0].redirect.prefixRewrite",
        "all uri matches to use a prefix",
    ),
    # validation.go validateHTTPStatus: 200..600.
    (
        vs("hosts: [reviews]\nhttp:\n- directResponse: {status: 601}"),
        "spec.http[0].directResponse.status",
        "not in range",
    ),
    (
        vs("hosts: [reviews]\nhttp:\n- directResponse: {status: 199}"),
        "spec.http[0].directResponse.status",
        "not in range",
    ),
    # validation.go validateWorkloadEntry: neither address nor network.
    (
        doc(
            "ServiceEntry",
            "se",
            "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\n"
            "resolution: STATIC\nendpoints: [{labels: {a: b}}]",
        ),
        "spec.endpoints[0]",
        '"address" is required',
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), INVALID, ids=[f for *_, f in INVALID])
def test_istio_rejects(text: str, path: str, fragment: str) -> None:
    assert found(errors(text), path, fragment), errors(text)


# -- accepted by Istio (some with a warning) --------------------------------------------------

VALID = [
    # agent/validation.go ValidateWildcardDomain + labels.IsWildcardDNS1123Label
    # (validation_test.go TestValidateRouteDestination "wildcard dash"/"wildcard prefix").
    vs(f"hosts: ['*x']\nhttp:\n- {R}"),
    vs(f"hosts: ['*foo.baz']\nhttp:\n- {R}"),
    vs(f"hosts: ['*-foo.baz']\nhttp:\n- {R}"),
    vs("hosts: [reviews]\nhttp:\n- route: [{destination: {host: '*-foo.baz'}}]"),
    vs("hosts: [reviews]\nhttp:\n- route: [{destination: {host: '*foo.baz'}}]"),
    doc("DestinationRule", "dr", "host: '*foo.baz'"),
    vs(f"hosts: ['Foo.Example.com.']\nhttp:\n- {R}"),
    # TestValidateVirtualService "allow sni based domains": AUTO_PASSTHROUGH SNI names.
    vs(
        "hosts: ['outbound_.15010_._.istiod.istio-system.svc.cluster.local']\n" + GW + "\n"
        "tls:\n- match: [{sniHosts: ['outbound_.15010_._.istiod.istio-system.svc.cluster.local']}]"
        "\n  route: [{destination: {host: istio.istio-system.svc.cluster.local}}]"
    ),
    # validateSniHost: subsets of the VirtualService hosts.
    vs("hosts: ['*.foo.com']\ntls:\n- match: [{sniHosts: [a.foo.com, '*.b.foo.com']}]\n  " + R),
    # ValidateVirtualService: JWT claims on a gateway-bound VirtualService.
    vs(
        f"hosts: [a.example.com]\n{GW}\nhttp:\n- match: [{{headers: "
        f"{{'@request.auth.claims.group': {{exact: a}}}}}}]\n  {R}"
    ),
    # validateHTTPRedirect: prefixRewrite with header-only matches (no uri to check).
    vs(
        "hosts: [reviews]\nhttp:\n- match: [{headers: {foo: {exact: bar}}}]\n"
        "  redirect: {prefixRewrite: /x}"
    ),
    # validateHTTPStatus: 600 is inside Istio's range.
    vs("hosts: [reviews]\nhttp:\n- directResponse: {status: 600}"),
    # validateRouteDestinations: a single weight-0 destination is fine.
    vs("hosts: [reviews]\ntcp:\n- route: [{destination: {host: reviews}, weight: 0}]"),
    # validateExportTo: "." and another namespace.
    vs(f"hosts: [reviews]\nexportTo: ['.', other]\nhttp:\n- {R}"),
]


@pytest.mark.parametrize("text", VALID)
def test_istio_accepts(text: str) -> None:
    assert not errors(text), errors(text)


WARNINGS = [
    # validation.go validateWorkloadEntry: network and no address.
    (
        doc(
            "ServiceEntry",
            "se",
            "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\n"
            "resolution: STATIC\nendpoints: [{network: n1}]",
        ),
        "spec.endpoints[0]",
        "address is unset with network 'n1'",
    ),
    # validation.go ValidateServiceEntry: ValidatePartialWildCard is a warning there.
    (
        doc(
            "ServiceEntry",
            "se",
            "hosts: ['*foo.com']\nports: [{number: 80, name: http, protocol: HTTP}]",
        ),
        "spec.hosts[0]",
        "partial wildcard '*foo.com' not allowed",
    ),
    # validateSniHost: an IP is only warned about.
    (
        vs("hosts: [reviews]\ntls:\n- match: [{sniHosts: [1.2.3.4]}]\n  " + R),
        "spec.tls[0].match[0].sniHosts",
        "goes against SNI spec",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), WARNINGS, ids=[f for *_, f in WARNINGS])
def test_istio_warns(text: str, path: str, fragment: str) -> None:
    assert not errors(text), errors(text)
    assert found(warnings(text), path, fragment), warnings(text)
