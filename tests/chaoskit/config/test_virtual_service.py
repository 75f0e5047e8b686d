import textwrap

import pytest

from chaoskit.config.loader import load_text
from chaoskit.config.virtual_service import MESH, VirtualService


def vs(spec: str, name: str = "reviews", namespace: str = "default") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        + "\n"
    )


def load_one(text: str) -> VirtualService:
    result = load_text(text)
    assert [str(i) for i in result.issues.errors] == []
    (resource,) = result.resources
    assert isinstance(resource, VirtualService)
    return resource


def test_bookinfo_reviews_test_v2():
    r = load_one(
        vs("""
        hosts: [reviews]
        http:
        - match:
          - headers:
              end-user: {exact: jason}
          route:
          - destination: {host: reviews, subset: v2}
        - route:
          - destination: {host: reviews, subset: v1}
    """)
    )
    assert r.fqdn_hosts == ("reviews.default.svc.cluster.local",)
    assert r.gateways == (MESH,)
    first, second = r.http
    assert first.match[0].headers["end-user"].matches("jason")
    assert not first.match[0].headers["end-user"].matches("jasonx")
    assert first.route[0].destination.subset == "v2"
    assert second.is_catch_all and not first.is_catch_all
    assert first.timeout is None and first.retries is None


def test_weights_retries_timeout_fault_mirror():
    r = load_one(
        vs("""
        hosts: [reviews]
        http:
        - name: canary
          timeout: 3s
          retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,connect-failure,503"}
          fault:
            abort: {httpStatus: 503, percentage: {value: 25}}
            delay: {fixedDelay: 100ms, percent: 10}
          mirror: {host: reviews, subset: v3}
          mirrorPercentage: {value: 5}
          route:
          - destination: {host: reviews, subset: v1}
            weight: 80
          - destination: {host: reviews, subset: v2}
            weight: 20
    """)
    )
    (route,) = r.http
    assert route.name == "canary"
    assert route.timeout == 3.0
    assert route.retries is not None
    assert route.retries.attempts == 3 and route.retries.per_try_timeout == 1.0
    assert route.retries.retry_on == ("5xx", "connect-failure", "503")
    assert (
        route.fault is not None and route.fault.abort is not None and route.fault.delay is not None
    )
    assert route.fault.abort.http_status == 503 and route.fault.abort.percentage == 25
    assert route.fault.delay.fixed_delay == 0.1 and route.fault.delay.percentage == 10
    assert [d.weight for d in route.route] == [80, 20]
    assert route.mirrors[0].percentage == 5 and route.mirrors[0].destination.subset == "v3"


def test_gateway_names_are_normalised():
    r = load_one(
        vs("""
        hosts: ["*"]
        gateways: [bookinfo-gateway, istio-system/ingress]
        http:
        - match: [{uri: {exact: /productpage}}, {uri: {prefix: /static}}]
          route: [{destination: {host: productpage, port: {number: 9080}}}]
    """)
    )
    assert r.gateways == ("default/bookinfo-gateway", "istio-system/ingress")
    assert r.http[0].route[0].destination.port == 9080


def test_unset_fault_percentage_is_a_warning_and_zero():
    result = load_text(
        vs("""
        hosts: [ratings]
        http:
        - fault: {abort: {httpStatus: 500}}
          route: [{destination: {host: ratings}}]
    """)
    )
    assert not result.issues.errors
    (warning,) = result.issues.warnings
    assert warning.path == "spec.http[0].fault.abort"
    assert "0%" in warning.message
    (r,) = result.resources
    assert isinstance(r, VirtualService)
    assert r.http[0].fault is not None and r.http[0].fault.abort is not None
    assert r.http[0].fault.abort.percentage == 0


def test_direct_response_redirect_rewrite_headers():
    r = load_one(
        vs(
            """
        hosts: [web]
        http:
        - match: [{uri: {prefix: /old}}]
          redirect: {uri: /new, authority: example.com, redirectCode: 302}
        - match: [{uri: {exact: /health}}]
          directResponse: {status: 200, body: {string: ok}}
          headers: {response: {set: {content-type: text/plain}}}
        - rewrite: {uri: /v1, authority: api.internal}
          headers:
            request: {add: {x-a: "1"}, remove: [x-b]}
          route: [{destination: {host: web}}]
    """,
            name="web",
        )
    )
    redirect, direct, rewrite = r.http
    assert redirect.redirect is not None and redirect.redirect.redirect_code == 302
    assert direct.direct_response is not None and direct.direct_response.body == b"ok"
    assert rewrite.rewrite is not None and rewrite.rewrite.uri == "/v1"
    assert rewrite.headers is not None and rewrite.headers.request.remove == ("x-b",)


INVALID = [
    # (spec, field path, message fragment)
    ("http: []", "spec", "http, tcp or tls must be provided"),
    (
        "hosts: ['*']\nhttp: [{route: [{destination: {host: a}}]}]",
        "spec.hosts",
        "wildcard host * is not allowed",
    ),
    ("hosts: [a, a]\nhttp: [{route: [{destination: {host: a}}]}]", "spec.hosts", "duplicate hosts"),
    (
        "hosts: ['foo*.com']\nhttp: [{route: [{destination: {host: a}}]}]",
        "spec.hosts",
        "not a valid DNS name",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{uri: {exact: /}}]}]",
        "spec.http[0]",
        "route, redirect or direct_response is required",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], redirect: {uri: /x}}]",
        "spec.http[0]",
        "both route and redirect",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a}}], directResponse: {status: 200}}]",
        "spec.http[0]",
        "route and direct_response",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {abort: {httpStatus: 500, percentage: {value: 1}}}, redirect: {uri: /x}}]",
        "spec.http[0]",
        "both fault and redirect",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {subset: v1}}]}]",
        "spec.http[0].route[0].destination",
        '"host" is required',
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: '*'}}]}]",
        "spec.http[0].route[0].destination.host",
        "cannot be '*'",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a, subset: V_1}}]}]",
        "spec.http[0].route[0].destination.subset",
        "DNS-1123",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a, port: {number: 70000}}}]}]",
        "spec.http[0].route[0].destination.port.number",
        "larger than 65535",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a}, weight: -1}, {destination: {host: b}}]}]",
        "spec.http[0].route[0].weight",
        "< 0",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]}]",
        "spec.http[0].route",
        "total destination weight = 0",
    ),
    (
        "hosts: [a]\nhttp: [{timeout: 0s, route: [{destination: {host: a}}]}]",
        "spec.http[0].timeout",
        "greater than 1ms",
    ),
    (
        "hosts: [a]\nhttp: [{timeout: 1.5ms, route: [{destination: {host: a}}]}]",
        "spec.http[0].timeout",
        "ms precision",
    ),
    (
        "hosts: [a]\nhttp: [{timeout: 5, route: [{destination: {host: a}}]}]",
        "spec.http[0].timeout",
        "is not a duration",
    ),
    (
        "hosts: [a]\nhttp: [{retries: {attempts: -1}, route: [{destination: {host: a}}]}]",
        "spec.http[0].retries.attempts",
        "cannot be negative",
    ),
    (
        "hosts: [a]\nhttp: [{retries: {attempts: 0, perTryTimeout: 1s}, route: [{destination: {host: a}}]}]",
        "spec.http[0].retries",
        "attempts are set to 0",
    ),
    (
        "hosts: [a]\nhttp: [{retries: {attempts: 2, retryOn: '5xx, reset'}, route: [{destination: {host: a}}]}]",
        "spec.http[0].retries.retryOn",
        "no spaces around commas",
    ),
    (
        "hosts: [a]\nhttp: [{retries: {attempts: 2, retryOn: 5xxx}, route: [{destination: {host: a}}]}]",
        "spec.http[0].retries.retryOn",
        'did you mean "5xx"',
    ),
    (
        "hosts: [a]\nhttp: [{retries: {attempts: 2, perTrytimeout: 1s}, route: [{destination: {host: a}}]}]",
        "spec.http[0].retries.perTrytimeout",
        'did you mean "perTryTimeout"',
    ),
    (
        "hosts: [a]\nhttp: [{fault: {}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault",
        "must have an abort and/or a delay",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {abort: {httpStatus: 700, percentage: {value: 1}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault.abort.httpStatus",
        "not in range 200-599",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {abort: {grpcStatus: NOPE, percentage: {value: 1}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault.abort.grpcStatus",
        "not a gRPC status",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {abort: {httpStatus: 500, percentage: {value: 101}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault.abort.percentage.value",
        "not in [0, 100]",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {abort: {httpStatus: 500, percent: 50}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault.abort.percent",
        "removed in Istio 1.5",
    ),
    (
        "hosts: [a]\nhttp: [{fault: {delay: {exponentialDelay: 1s, percentage: {value: 1}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].fault.delay.exponentialDelay",
        "not supported",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{uri: {regex: '(?=x)'}}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0].uri.regex",
        "RE2",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{uri: {regex: '(unclosed'}}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0].uri.regex",
        "invalid regex",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{headers: {x: {prefix: ''}}}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0].headers.x.prefix",
        "should not be empty",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{headers: {'bad header': {exact: x}}}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0].headers.bad header",
        "valid HTTP token",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0].uri",
        "only one of exact, prefix, regex",
    ),
    (
        "hosts: [a]\nhttp: [{match: [{}], route: [{destination: {host: a}}]}]",
        "spec.http[0].match[0]",
        "must not be empty",
    ),
    (
        "hosts: [a]\nhttp: [{redirect: {redirectCode: 200, uri: /x}}]",
        "spec.http[0].redirect.redirectCode",
        "300-399",
    ),
    (
        "hosts: [a]\nhttp: [{redirect: {redirectCode: 301}}]",
        "spec.http[0].redirect",
        "must specify uri",
    ),
    (
        "hosts: [a]\nhttp: [{directResponse: {status: 99}}]",
        "spec.http[0].directResponse.status",
        "200-599",
    ),
    (
        "hosts: [a]\nhttp: [{rewrite: {}, route: [{destination: {host: a}}]}]",
        "spec.http[0].rewrite",
        "must specify uri",
    ),
    (
        "hosts: [a]\nhttp: [{rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].rewrite",
        "only one of uri, uriRegexRewrite",
    ),
    (
        "hosts: [a]\nhttp: [{mirror: {host: a}, mirrors: [{destination: {host: a}}], route: [{destination: {host: a}}]}]",
        "spec.http[0]",
        "both mirror and mirrors",
    ),
    (
        "hosts: [a]\nhttp: [{headers: {request: {set: {':path': x}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].headers.request.set",
        "pseudo-headers",
    ),
    (
        "hosts: [a]\nhttp: [{headers: {request: {set: {x: '50%'}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0].headers.request.set",
        "'%%'",
    ),
    (
        "hosts: [a]\nhttp: [{rewrite: {authority: x}, headers: {request: {set: {host: y}}}, route: [{destination: {host: a}}]}]",
        "spec.http[0]",
        "authority header cannot be set multiple times",
    ),
    (
        "hosts: [a]\ngateways: [Bad_Name]\nhttp: [{route: [{destination: {host: a}}]}]",
        "spec.gateways",
        "invalid gateway name",
    ),
    (
        "hosts: [a]\nhttp: [{route: [{destination: {host: a}}]}]\ntcp: [{route: []}]\nbogus: 1",
        "spec.bogus",
        'unknown field "bogus"',
    ),
    ("hosts: a\nhttp: [{route: [{destination: {host: a}}]}]", "spec.hosts", "must be a list"),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), INVALID)
def test_invalid_virtual_services_name_the_field(spec, path, fragment):
    result = load_text(vs(spec))
    found = [(i.path, i.message) for i in result.issues.errors]
    assert any(p == path and fragment in m for p, m in found), found


def test_errors_point_at_the_line_of_the_field():
    text = vs("""
        hosts: [a]
        http:
        - route:
          - destination: {host: a}
          timeout: 0s
    """)
    (issue,) = load_text(text, "vs.yaml").issues.errors
    assert issue.location.file == "vs.yaml"
    assert text.splitlines()[issue.location.line - 1].strip() == "timeout: 0s"
    assert str(issue).startswith(
        f"vs.yaml:{issue.location.line}: error: VirtualService/default/reviews: spec.http[0].timeout: "
    )


def test_export_to_is_validated():
    result = load_text(
        vs("hosts: [a]\nexportTo: ['Bad!']\nhttp: [{route: [{destination: {host: a}}]}]")
    )
    assert any(i.path == "spec.exportTo[0]" for i in result.issues.errors)


def test_zero_percentage_warns_that_it_never_fires():
    result = load_text(
        vs(
            "hosts: [a]\nhttp: [{fault: {abort: {httpStatus: 503, percentage: {value: 0}}}, route: [{destination: {host: a}}]}]"
        )
    )
    assert [w.message for w in result.issues.warnings] == ["abort percentage is 0%: it never fires"]


def test_tcp_match_entries_keep_their_selectors() -> None:
    """Each ``tcp[].match[]`` entry is kept whole (the TCP router applies ``matchTCP`` per entry),
    its ``gateways`` normalised like an HTTP match's."""
    r = load_one(
        vs("""
        hosts: [redis]
        gateways: [mesh, edge]
        tcp:
        - match:
          - {port: 6379, sourceLabels: {app: web}, sourceNamespace: prod, gateways: [edge]}
          - {destinationSubnets: [10.0.0.0/8, 192.168.0.1]}
          route: [{destination: {host: redis}}]
        """)
    )
    first, second = r.tcp[0].match
    assert (first.port, dict(first.source_labels), first.source_namespace, first.gateways) == (
        6379, {"app": "web"}, "prod", ("default/edge",),
    )  # fmt: skip
    assert second.destination_subnets == ("10.0.0.0/8", "192.168.0.1")
    assert r.tcp[0].ports == (6379,)


def test_tcp_destination_subnets_must_be_addresses_or_cidrs() -> None:
    result = load_text(vs("hosts: [redis]\ntcp:\n- match: [{destinationSubnets: [10.0.0.0/33]}]\n"
                          "  route: [{destination: {host: redis}}]"))  # fmt: skip
    assert [(i.path, i.message) for i in result.issues.errors] == [
        ("spec.tcp[0].match[0].destinationSubnets",
         "'10.0.0.0/33' is not an IP address or a CIDR block"),
    ]  # fmt: skip


@pytest.mark.parametrize(("percent", "code"), [(50, "IST0002"), (0, "")])
def test_deprecated_delay_percent_carries_istios_code_when_above_zero(percent, code):
    """istio/istio pkg/config/analysis/analyzers/testdata/deprecation.yaml (VirtualService
    productpage, ``delay.percent: 50``); deprecation.go reports it when ``Percent > 0``."""
    result = load_text(
        vs(f"""
        hosts: [productpage]
        http:
        - fault: {{delay: {{fixedDelay: 1s, percent: {percent}}}}}
          route: [{{destination: {{host: productpage}}}}]
    """)
    )
    (issue,) = [i for i in result.issues.warnings if i.path.endswith("delay.percent")]
    assert issue.code == code
