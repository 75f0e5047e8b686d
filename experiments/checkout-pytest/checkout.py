"""checkout: a tiny order service that charges each order through the payments service.

It reads ``PAYMENTS_URL`` and calls payments through the HTTP proxy of its environment
(``HTTP_PROXY``: the service mesh, or chaoskit in tests), waiting ``PAYMENTS_TIMEOUT`` seconds
(default 0.3) per call and retrying once. Every call for one order carries the same
``Idempotency-Key``, so a retry can never charge twice. ``PORT`` (default 0: any free port)
is where it listens; it prints ``listening on http://127.0.0.1:PORT`` when ready.

    POST /checkout {"order": "o-1", "amount": 12.5}
      → 200 {"status": "paid", "attempts": 1}
      → 503 {"status": "payment-unavailable", "reason": "..."}  (in well under a second)
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAYMENTS_URL = os.environ.get("PAYMENTS_URL", "http://payments/pay")
PAYMENTS_TIMEOUT = float(os.environ.get("PAYMENTS_TIMEOUT", "0.3"))
ATTEMPTS = 2  # one retry of our own


def charge(order: str, amount: float) -> tuple[int, dict[str, object]]:
    body = json.dumps({"order": order, "amount": amount}).encode()
    reason = ""
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(
            f"{PAYMENTS_URL}?order={order}",
            data=body,
            method="POST",
            headers={"content-type": "application/json", "idempotency-key": order},
        )
        try:
            with urllib.request.urlopen(request, timeout=PAYMENTS_TIMEOUT) as response:
                response.read()
                return 200, {"status": "paid", "attempts": attempt}
        except urllib.error.HTTPError as e:
            reason = f"payments answered {e.code}"
            if e.code < 500:
                break  # the payment was refused: retrying will not help
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            reason = f"payments did not answer within {PAYMENTS_TIMEOUT:g}s"
        except http.client.HTTPException:
            # The connection broke mid-answer (IncompleteRead: a reset after the headers or
            # part of the body). Whether payments charged is unknown; the retry carries the
            # same idempotency key, so it cannot charge twice.
            reason = "payments broke off its answer"
    return 503, {"status": "payment-unavailable", "reason": reason}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"status": "ok"} if self.path == "/health" else {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if self.path != "/checkout":
            self._answer(404, {"error": "not found"})
            return
        try:
            order = json.loads(self.rfile.read(length))
            status, payload = charge(str(order["order"]), float(order["amount"]))
        except (ValueError, KeyError, TypeError):
            status, payload = 400, {"error": "expected {order, amount}"}
        self._answer(status, payload)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
