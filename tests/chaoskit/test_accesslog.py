import json

from chaoskit.accesslog import format_json, format_text
from chaoskit.records import AttemptRecord, Record

RECORD = Record(
    seq=1,
    request_id="abc",
    start=0.0,
    duration=0.0123,
    listener="mesh",
    source="productpage",
    method="GET",
    scheme="http",
    authority="reviews:9080",
    path="/r?x=1",
    status=503,
    flags=("UF", "URX"),
    details="upstream_reset_before_response_started{connection failure}",
    route_name="default",
    host="reviews.default.svc.cluster.local",
    cluster="outbound|9080||reviews.default.svc.cluster.local",
    upstream_host="127.0.0.1:9081",
    attempts=(AttemptRecord(1, "127.0.0.1:9081", "connect-failure", None, 0.001),),
    user_agent="curl/8",
)


def test_text_line_follows_istios_field_order():
    line = format_text(RECORD)
    assert line.startswith(
        '[1970-01-01T00:00:00.000Z] "GET /r?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection failure} - "-" 0 0 12 - "-" "curl/8" "abc" "reviews:9080" "127.0.0.1:9081" outbound|9080||reviews.default.svc.cluster.local'
    )
    assert line.endswith("default attempts=1 faults=- source=productpage")


def test_json_line():
    data = json.loads(format_json(RECORD))
    assert data["response_flags"] == "UF,URX" and data["response_code"] == 503
    assert data["attempts"] == [
        {
            "endpoint": "127.0.0.1:9081",
            "outcome": "connect-failure",
            "status": None,
            "duration_ms": 1.0,
            "faults": [],
        }
    ]
    assert data["source_workload"] == "productpage"
