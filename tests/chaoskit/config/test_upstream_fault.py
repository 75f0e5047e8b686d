"""UpstreamFault parsing: targets, actions, selection, and the rules that keep them coherent."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.config.loader import LoadResult, load_text
from chaoskit.config.upstream_fault import (
    Endpoint,
    FaultAbort,
    FaultCorruptBody,
    FaultDelay,
    FaultReset,
    FaultSlowBody,
    FaultTruncateBody,
    FaultWindow,
    UpstreamFault,
)
from chaoskit.faults.body_point import BodyPoint
from tests.chaoskit.config import helpers

HEAD = """\
apiVersion: chaoskit.dev/v1alpha1
kind: UpstreamFault
metadata: {name: flaky-payments%s}
spec:
"""


def load(spec: str, namespace: str | None = None) -> LoadResult:
    head = HEAD % (f", namespace: {namespace}" if namespace else "")
    return load_text(head + textwrap.indent(textwrap.dedent(spec), "  "))


def fault(spec: str, namespace: str | None = None) -> UpstreamFault:
    result = load(spec, namespace)
    assert not result.issues.errors, [str(i) for i in result.issues.errors]
    assert not result.issues.warnings, [str(i) for i in result.issues.warnings]
    (resource,) = result.resources
    assert isinstance(resource, UpstreamFault)
    return resource


def messages(result: LoadResult) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in result.issues.errors]


# -- an example that sets every field at once ---------------------------------------------

DESIGN_EXAMPLE = """\
host: payments                  # required; Istio host name
subset: v2                      # optional: a DestinationRule subset
endpointLabels: {zone: a}       # optional: endpoint labels
endpoint: 127.0.0.1:9082        # optional: one endpoint
abort: {httpStatus: 503, headers: {retry-after: "1"}}   # or grpcStatus
delay: {fixedDelay: 250ms}      # or {distribution: lognormal, median: 200ms, sigma: 0.5}
reset: {after: headers}         # or {afterBytes: 100}
percentage: {value: 50}         # default 100 here (unlike Istio's VS fault)
firstN: 2                       # or nth: 3, or sequence: [abort, abort, pass]
window: {after: 5s, for: 10s}   # optional time window from when it is applied
"""


def test_design_example_as_written_reports_its_conflicts() -> None:
    """The illustrative example sets everything at once: both conflicts are named, nothing else."""
    result = load(DESIGN_EXAMPLE)
    assert messages(result) == [
        (
            "spec.reset",
            "reset cannot be combined with abort: an attempt either gets a response "
            "or a reset (use sequence to alternate them)",
        ),
        (
            "spec.percentage",
            "percentage cannot be combined with firstN: counted selection is "
            "deterministic (drop one of them)",
        ),
    ]
    assert [i.location.line for i in result.issues.errors] == [11, 12]
    # Parsing carries on: every field is still read.
    (f,) = result.resources
    assert isinstance(f, UpstreamFault)
    assert f.actions == ("delay", "abort", "reset")


def test_design_example_split_abort_with_delay_by_percentage() -> None:
    f = fault("""\
        host: payments
        subset: v2
        endpointLabels: {zone: a}
        endpoint: 127.0.0.1:9082
        abort: {httpStatus: 503, headers: {retry-after: "1"}}
        delay: {fixedDelay: 250ms}
        percentage: {value: 50}
        window: {after: 5s, for: 10s}
    """)
    assert (f.host, f.fqdn, f.subset) == ("payments", "payments.default.svc.cluster.local", "v2")
    assert f.endpoint_labels == {"zone": "a"}
    assert f.endpoint == Endpoint("127.0.0.1", 9082)
    assert f.abort == FaultAbort(http_status=503, headers={"retry-after": "1"})
    assert f.delay == FaultDelay("fixed", fixed_delay=0.25)
    assert f.percentage == 50.0
    assert f.selection == "percentage"
    assert f.window == FaultWindow(after=5.0, duration=10.0)
    assert f.actions == ("delay", "abort")
    assert f.KIND == "UpstreamFault"
    assert f.ref == "UpstreamFault/default/flaky-payments"


def test_design_example_split_reset_first_n() -> None:
    f = fault("host: payments\nreset: {after: headers}\nfirstN: 2\n")
    assert f.reset == FaultReset("headers")
    assert (f.first_n, f.selection) == (2, "firstN")


def test_design_example_split_sequence() -> None:
    f = fault("""\
        host: payments
        abort: {httpStatus: 503}
        reset: {afterBytes: 100}
        sequence: [abort, abort, reset, pass]
    """)
    assert f.sequence == ("abort", "abort", "reset", "pass")
    assert f.reset == FaultReset("body", after_bytes=100)
    assert f.selection == "sequence" and f.repeat is False


# -- targets --------------------------------------------------------------------------------


def test_short_host_expands_in_the_fault_namespace() -> None:
    assert fault("host: payments\nhang: true\n", "shop").fqdn == "payments.shop.svc.cluster.local"
    assert fault("host: api.example.com\nhang: true\n").fqdn == "api.example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9082", Endpoint("127.0.0.1", 9082)),
        ("[::1]:9082", Endpoint("::1", 9082)),
        ("LocalHost:8080", Endpoint("localhost", 8080)),
    ],
)
def test_endpoint(text: str, expected: Endpoint) -> None:
    f = fault(f"host: payments\nendpoint: '{text}'\nhang: true\n")
    assert f.endpoint == expected
    assert str(expected) in (text, text.lower())


def test_match_targets_only_some_requests() -> None:
    f = fault("""\
        host: payments
        match:
        - method: {exact: POST}
          uri: {prefix: /pay}
        abort: {httpStatus: 500}
    """)
    (m,) = f.match
    assert m.method is not None and m.method.matches("POST")
    assert m.uri is not None and m.uri.matches("/pay/123") and not m.uri.matches("/refund")


# -- actions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("{fixedDelay: 1s}", FaultDelay("fixed", fixed_delay=1.0)),
        (
            "{distribution: uniform, min: 0s, max: 500ms}",
            FaultDelay("uniform", minimum=0.0, maximum=0.5),
        ),
        (
            "{distribution: uniform, min: 100ms, max: 100ms}",
            FaultDelay("uniform", minimum=0.1, maximum=0.1),
        ),
        (
            "{distribution: normal, mean: 200ms, stddev: 50ms}",
            FaultDelay("normal", mean=0.2, stddev=0.05),
        ),
        (
            "{distribution: lognormal, median: 200ms, sigma: 0.5}",
            FaultDelay("lognormal", median=0.2, sigma=0.5),
        ),
        (
            "{distribution: lognormal, median: 1s, sigma: 1}",
            FaultDelay("lognormal", median=1.0, sigma=1.0),
        ),
    ],
)
def test_delay_kinds(delay: str, expected: FaultDelay) -> None:
    assert fault(f"host: payments\ndelay: {delay}\n").delay == expected


@pytest.mark.parametrize(
    ("abort", "expected"),
    [
        ("{httpStatus: 503}", FaultAbort(http_status=503)),
        (
            "{httpStatus: 429, headers: {Retry-After: 2}, body: slow down}",
            FaultAbort(http_status=429, headers={"retry-after": "2"}, body="slow down"),
        ),
        ("{grpcStatus: UNAVAILABLE}", FaultAbort(grpc_status="UNAVAILABLE")),
    ],
)
def test_abort(abort: str, expected: FaultAbort) -> None:
    assert fault(f"host: payments\nabort: {abort}\n").abort == expected


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("{after: connect}", FaultReset("connect")),
        ("{after: headers}", FaultReset("headers")),
        ("{afterBytes: 1}", FaultReset("body", after_bytes=1)),
        ("{afterEvents: 3}", FaultReset("body", after_events=3)),
    ],
)
def test_reset(reset: str, expected: FaultReset) -> None:
    assert fault(f"host: payments\nreset: {reset}\n").reset == expected


@pytest.mark.parametrize("hang", ["true", "{}"])
def test_hang(hang: str) -> None:
    f = fault(f"host: payments\nhang: {hang}\n")
    assert f.hang is True and f.actions == ("hang",)


def test_hang_false_is_no_action() -> None:
    result = load("host: payments\nhang: false\n")
    assert messages(result) == [
        (
            "spec",
            "an UpstreamFault needs at least one action: delay, "
            "abort, reset, hang, slowBody, pauseBody, truncateBody, corruptBody, webSocket (HTTP) or "
            "latency, "
            "bandwidth, slicer, limitData, resetPeer, timeout (TCP)",
        )
    ]


def test_body_actions() -> None:
    assert fault("host: p\nslowBody: {bytesPerSecond: 1024}\n").slow_body == FaultSlowBody(1024)
    cut = FaultTruncateBody(BodyPoint("bytes", 0))
    assert fault("host: p\ntruncateBody: {afterBytes: 0}\n").truncate_body == cut
    cut = FaultTruncateBody(BodyPoint("events", 2))
    assert fault("host: p\ntruncateBody: {afterEvents: 2}\n").truncate_body == cut
    assert fault("host: p\ncorruptBody: {}\n").corrupt_body == FaultCorruptBody(1)
    assert fault("host: p\ncorruptBody: {bytes: 3}\n").corrupt_body == FaultCorruptBody(3)


@pytest.mark.parametrize(
    "other",
    [
        "abort: {httpStatus: 503}",
        "reset: {after: connect}",
        "hang: {}",
        "slowBody: {bytesPerSecond: 10}",
        "truncateBody: {afterBytes: 5}",
        "corruptBody: {bytes: 2}",
    ],
)
def test_delay_combines_with_one_other_action(other: str) -> None:
    f = fault(f"host: payments\ndelay: {{fixedDelay: 10ms}}\n{other}\n")
    assert f.actions[0] == "delay" and len(f.actions) == 2


# -- selection ------------------------------------------------------------------------------


def test_percentage_defaults_to_100() -> None:
    f = fault("host: payments\nabort: {httpStatus: 503}\n")
    assert (f.percentage, f.selection, f.window, f.match) == (100.0, "percentage", None, ())


def test_selection_modes() -> None:
    base = "host: payments\nabort: {httpStatus: 503}\n"
    assert fault(base + "percentage: {value: 0.5}\n").percentage == 0.5
    assert fault(base + "firstN: 3\n").first_n == 3
    f = fault(base + "nth: 3\n")
    assert (f.nth, f.selection, f.percentage) == (3, "nth", 100.0)
    f = fault(base + "sequence: [pass, abort]\nrepeat: true\n")
    assert (f.sequence, f.repeat) == (("pass", "abort"), True)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("{after: 0s, for: 2s}", FaultWindow(0.0, 2.0)),
        ("{after: 1m}", FaultWindow(60.0, None)),
        ("{for: 500ms}", FaultWindow(0.0, 0.5)),
    ],
)
def test_window(window: str, expected: FaultWindow) -> None:
    assert fault(f"host: payments\nhang: true\nwindow: {window}\n").window == expected


def test_sequence_may_alternate_actions_that_cannot_combine() -> None:
    f = fault("""\
        host: payments
        abort: {httpStatus: 503}
        reset: {after: connect}
        hang: true
        sequence: [abort, reset, hang]
    """)
    assert f.actions == ("abort", "reset", "hang")


# -- warnings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ("abort: {httpStatus: 503}\npercentage: {value: 0}", "spec.percentage", "never fires"),
        ("abort: {httpStatus: 503}\nsequence: [pass, pass]", "spec.sequence", "never fires"),
        (
            "abort: {httpStatus: 503}\ndelay: {fixedDelay: 1s}\nsequence: [abort]",
            "spec.delay",
            "no sequence step names it",
        ),
    ],
)
def test_warnings(spec: str, path: str, fragment: str) -> None:
    result = load("host: payments\n" + spec + "\n")
    assert not result.issues.errors
    assert [(w.path, fragment in w.message) for w in result.issues.warnings] == [(path, True)]


# -- invalid faults -------------------------------------------------------------------------

OK = "abort: {httpStatus: 503}"

INVALID = [
    # targets
    ("abort: {httpStatus: 503}", "spec", '"host" is required'),
    ("host: '*'\n" + OK, "spec.host", "host cannot be '*'"),
    ("host: pay_ments\n" + OK, "spec.host", "not a valid DNS name"),
    ("host: p\nsubset: V2\n" + OK, "spec.subset", "not a valid DNS-1123 label"),
    ("host: p\nendpoint: 127.0.0.1\n" + OK, "spec.endpoint", "is not ADDRESS:PORT"),
    ("host: p\nendpoint: '127.0.0.1:70000'\n" + OK, "spec.endpoint", "port in 1-65535"),
    ("host: p\nendpoint: '::1:80'\n" + OK, "spec.endpoint", "IPv6 endpoint in brackets"),
    ("host: p\nmatch: [{gateways: [gw]}]\n" + OK, "spec.match[0].gateways", "do not apply"),
    ("host: p\nfristN: 2\n" + OK, "spec.fristN", 'did you mean "firstN"'),
    # actions
    ("host: p", "spec", "needs at least one action"),
    ("host: p\nabort: {httpStatus: 700}", "spec.abort.httpStatus", "not in range 200-599"),
    (
        "host: p\nabort: {httpStatus: 503, grpcStatus: UNAVAILABLE}",
        "spec.abort",
        "only one of httpStatus, grpcStatus",
    ),
    (
        "host: p\nabort: {grpcStatus: UNAVAILBLE}",
        "spec.abort.grpcStatus",
        'did you mean "UNAVAILABLE"',
    ),
    (
        "host: p\nabort: {headers: {retry-after: '1'}}",
        "spec.abort",
        "needs httpStatus or grpcStatus",
    ),
    (
        "host: p\nabort: {httpStatus: 503, headers: {'bad header': x}}",
        "spec.abort.headers",
        "not a valid HTTP token",
    ),
    (
        "host: p\nabort: {httpStatus: 503, percentage: {value: 5}}",
        "spec.abort.percentage",
        "use spec.percentage",
    ),
    ("host: p\ndelay: {}", "spec.delay", "needs fixedDelay or distribution"),
    (
        "host: p\ndelay: {fixedDelay: 1s, distribution: uniform}",
        "spec.delay",
        "only one of fixedDelay, distribution",
    ),
    ("host: p\ndelay: {fixedDelay: 0s}", "spec.delay.fixedDelay", "greater than 1ms"),
    ("host: p\ndelay: {fixedDelay: 1s, min: 1s}", "spec.delay.min", "not used with fixedDelay"),
    ("host: p\ndelay: {distribution: poisson}", "spec.delay.distribution", "is not one of"),
    ("host: p\ndelay: {distribution: uniform, min: 1s}", "spec.delay", 'needs "max"'),
    (
        "host: p\ndelay: {distribution: uniform, min: 2s, max: 1s}",
        "spec.delay.max",
        "less than min",
    ),
    (
        "host: p\ndelay: {distribution: normal, mean: 1s, stddev: 1s, median: 1s}",
        "spec.delay.median",
        "not used with distribution: normal",
    ),
    (
        "host: p\ndelay: {distribution: lognormal, median: 1s, sigma: 0}",
        "spec.delay.sigma",
        "greater than 0",
    ),
    (
        "host: p\ndelay: {distribution: lognormal, median: 1s, sigma: '0.5'}",
        "spec.delay.sigma",
        "must be a number",
    ),
    (
        "host: p\ndelay: {distribution: normal, mean: 100, stddev: 1s}",
        "spec.delay.mean",
        "not a duration",
    ),
    ("host: p\nreset: {after: body}", "spec.reset.after", "is not one of connect, headers"),
    (
        "host: p\nreset: {after: headers, afterBytes: 5}",
        "spec.reset",
        "only one of after, afterBytes",
    ),
    ("host: p\nreset: {afterBytes: 0}", "spec.reset.afterBytes", "at least 1"),
    ("host: p\nreset: {}", "spec.reset", "needs after"),
    ("host: p\nhang: 'yes'", "spec.hang", "must be true or {}"),
    ("host: p\nhang: {forever: true}", "spec.hang.forever", 'unknown field "forever"'),
    ("host: p\nslowBody: {bytesPerSecond: 0}", "spec.slowBody.bytesPerSecond", "less than 1"),
    ("host: p\ntruncateBody: {}", "spec.truncateBody", "needs afterBytes or afterEvents"),
    (
        "host: p\ntruncateBody: {afterBytes: 1, afterEvents: 1}",
        "spec.truncateBody",
        "only one of afterBytes, afterEvents",
    ),
    ("host: p\nreset: {afterEvents: 0}", "spec.reset.afterEvents", "at least 1"),
    ("host: p\npauseBody: {for: 1s}", "spec.pauseBody", "needs afterBytes or afterEvents"),
    ("host: p\npauseBody: {afterBytes: -1}", "spec.pauseBody.afterBytes", "at least 0"),
    ("host: p\npauseBody: {afterBytes: 1, for: 0s}", "spec.pauseBody.for", ""),
    (
        "host: p\npauseBody: {afterBytes: 1, percentage: {value: 5}}",
        "spec.pauseBody.percentage",
        "selection is set once",
    ),
    ("host: p\ncorruptBody: {bytes: 0}", "spec.corruptBody.bytes", "less than 1"),
    # combinations
    (
        "host: p\nabort: {httpStatus: 503}\nhang: true",
        "spec.hang",
        "hang cannot be combined with abort: a hung attempt never answers",
    ),
    (
        "host: p\nreset: {after: connect}\nhang: {}",
        "spec.hang",
        "hang cannot be combined with reset",
    ),
    (
        "host: p\nabort: {httpStatus: 503}\nreset: {after: connect}",
        "spec.reset",
        "reset cannot be combined with abort",
    ),
    (
        "host: p\nslowBody: {bytesPerSecond: 9}\ntruncateBody: {afterBytes: 9}",
        "spec.truncateBody",
        "only delay combines with others",
    ),
    # selection
    ("host: p\n" + OK + "\npercentage: {value: 150}", "spec.percentage.value", "not in [0, 100]"),
    ("host: p\n" + OK + "\nfirstN: 0", "spec.firstN", "0 is less than 1"),
    ("host: p\n" + OK + "\nfirstN: 2\nnth: 3", "spec.nth", "only one of firstN, nth, sequence"),
    (
        "host: p\n" + OK + "\nnth: 2\npercentage: {value: 10}",
        "spec.percentage",
        "percentage cannot be combined with nth",
    ),
    ("host: p\n" + OK + "\nrepeat: true", "spec.repeat", "repeat only applies to sequence"),
    ("host: p\n" + OK + "\nsequence: []", "spec.sequence", "at least one step"),
    ("host: p\n" + OK + "\nsequence: [abrot]", "spec.sequence[0]", 'did you mean "abort"'),
    (
        "host: p\n" + OK + "\nsequence: [abort, reset]",
        "spec.sequence[1]",
        '"reset" is not configured in this fault',
    ),
    ("host: p\n" + OK + "\nsequence: [abort, 3]", "spec.sequence[1]", "must be an action name"),
    ("host: p\n" + OK + "\nwindow: {}", "spec.window", "window needs after and/or for"),
    ("host: p\n" + OK + "\nwindow: {for: 0s}", "spec.window.for", "greater than 1ms"),
    ("host: p\n" + OK + "\nwindow: {after: 5s, until: 9s}", "spec.window.until", "unknown field"),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), INVALID)
def test_invalid(spec: str, path: str, fragment: str) -> None:
    result = load(spec + "\n")
    errors = messages(result)
    assert any(p == path and fragment in m for p, m in errors), errors
    assert len(errors) == 1, errors  # one mistake, one message
    (resource,) = result.resources  # parsing carries on
    assert isinstance(resource, UpstreamFault)


def test_error_points_at_the_line() -> None:
    result = load("host: payments\nabort:\n  httpStatus: 99\n")
    (issue,) = result.issues.errors
    assert (issue.location.line, issue.path) == (7, "spec.abort.httpStatus")
    assert str(issue).startswith("<string>:7: error: UpstreamFault/default/flaky-payments: ")


# -- TCP actions: the host's ports must carry them (config/checks.py → check_protocol) ----------

_REDIS = helpers.doc(
    "ServiceEntry",
    "redis",
    """
    hosts: [redis]
    ports: [{number: 6379, name: tcp-redis, protocol: REDIS}]
    resolution: STATIC
    endpoints: [{address: 127.0.0.1}]
    """,
)


def _fault_doc(name: str, spec: str) -> str:
    return helpers.doc("UpstreamFault", name, spec, api="chaoskit.dev/v1alpha1")


@pytest.mark.parametrize(
    ("host", "action", "message"),
    [
        ("reviews", "latency: {fixedDelay: 1ms}",
         "reviews has no TCP port (9080/HTTP): TCP actions never apply to it; use delay, abort, "
         "reset, hang, slowBody, pauseBody, truncateBody or corruptBody"),
        ("redis", "abort: {httpStatus: 503}",
         "redis has only non-HTTP ports (6379/REDIS): HTTP actions never apply to its "
         "connections; use latency, bandwidth, slicer, limitData, resetPeer, timeout"),
    ],
)  # fmt: skip
def test_actions_must_fit_the_host_ports(host: str, action: str, message: str) -> None:
    v = helpers.check(_REDIS, _fault_doc("f", f"host: {host}\n{action}\n"))
    assert (f"spec.{action.split(':', maxsplit=1)[0]}", message) in helpers.messages(v)


def test_tcp_and_http_actions_fit_their_hosts() -> None:
    v = helpers.check(
        _REDIS,
        _fault_doc("f", "host: redis\nresetPeer: {}\n"),
        _fault_doc("g", "host: reviews\nabort: {httpStatus: 503}\n"),
    )
    assert not helpers.messages(v), helpers.messages(v)
