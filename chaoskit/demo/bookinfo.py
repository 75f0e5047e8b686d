"""Istio's Bookinfo sample, in pure-stdlib Python, for running Istio's tasks against chaoskit.

One module, four services, one process each::

    python -m chaoskit.demo.bookinfo productpage              # http://127.0.0.1:19080
    python -m chaoskit.demo.bookinfo details                  # :19081
    python -m chaoskit.demo.bookinfo reviews --version v2     # v1 :19082, v2 :19083, v3 :19084
    python -m chaoskit.demo.bookinfo ratings                  # :19085

The default ports are the endpoints of ``experiments/bookinfo/mesh/services.yaml``; ``--port``
overrides them (0 = any free port). Every service binds 127.0.0.1 only, answers ``GET /health``,
logs nothing per request and exits cleanly on SIGTERM or SIGINT.

The services behave like the originals where Istio's tasks can see it:

- **productpage** ``GET /productpage`` renders the book with its details
  (``http://details:9080/details/0``) and its reviews (``http://reviews:9080/reviews/0``). The
  reviews call waits **3 s** and is tried **twice** (the bug the fault-injection task exposes), so
  it gives up after about 6 s and shows "Error fetching product reviews!"; a failed details call
  shows "Error fetching product details!". The page stays a 200, as Bookinfo's does. The caller
  is the ``end-user`` header or the user signed in with ``POST /login`` (``username``, a cookie);
  ``end-user``, ``x-request-id`` and the trace headers are forwarded. ``/logout`` signs out,
  ``/api/v1/products[/0[/reviews|/ratings]]`` is the JSON API.
- **details** ``GET /details/0`` returns the book's details as JSON.
- **reviews** ``GET /reviews/0`` returns two reviews. v1 has no ratings; v2 asks
  ``http://ratings:9080/ratings/0`` with a **10 s** timeout and shows black stars; v3 waits
  **2.5 s** and shows red stars. If ratings fails, each review's rating is the error
  "Ratings service is currently unavailable".
- **ratings** ``GET /ratings/0`` returns ``{"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}``.

The page marks ratings with the words "black stars" or "red stars" (``5 black stars``), so that
a check — an experiment probe, a test — can tell the versions apart by text.

Outbound calls go only through the mesh proxy in ``HTTP_PROXY`` — the environment chaoskit gives
an app it runs, naming the caller as the proxy URL's user (``http://productpage:x@127.0.0.1:15001``)
— and never directly, whatever ``NO_PROXY`` says: ``details`` and ``reviews`` are mesh names that
only the proxy can resolve. A service that calls out refuses to start without ``HTTP_PROXY``.
Faults come from chaoskit, never from the apps.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import http.client
import json
import os
import re
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, cast

HOST = "127.0.0.1"
VERSIONS: Mapping[str, tuple[str, ...]] = {
    "productpage": ("v1",),
    "details": ("v1",),
    "reviews": ("v1", "v2", "v3"),
    "ratings": ("v1",),
}
#: (service, version) → the port of its endpoint in experiments/bookinfo/mesh/services.yaml.
PORTS: Mapping[tuple[str, str], int] = {
    ("productpage", "v1"): 19080,
    ("details", "v1"): 19081,
    ("reviews", "v1"): 19082,
    ("reviews", "v2"): 19083,
    ("reviews", "v3"): 19084,
    ("ratings", "v1"): 19085,
}

DETAILS_URL = "http://details:9080/details"
REVIEWS_URL = "http://reviews:9080/reviews"
RATINGS_URL = "http://ratings:9080/ratings"

#: productpage → details: one try of 3 s.
DETAILS_TIMEOUT = 3.0
#: productpage → reviews: 3 s per try, two tries (Bookinfo's deliberate "3 s + 1 retry").
REVIEWS_TIMEOUT = 3.0
REVIEWS_TRIES = 2
#: reviews → ratings, per version: v2 waits 10 s, v3 2.5 s; v1 does not call ratings.
RATINGS_TIMEOUT: Mapping[str, float] = {"v2": 10.0, "v3": 2.5}
STAR_COLOR: Mapping[str, str] = {"v2": "black", "v3": "red"}

REVIEWS_ERROR = "Error fetching product reviews!"
REVIEWS_SORRY = "Sorry, product reviews are currently unavailable for this book."
DETAILS_ERROR = "Error fetching product details!"
DETAILS_SORRY = "Sorry, product details are currently unavailable for this book."
RATINGS_ERROR = "Ratings service is currently unavailable"

#: Headers productpage and reviews pass on to the services they call (Bookinfo's list, trimmed).
FORWARD_HEADERS = (
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
)

PRODUCT: Mapping[str, Any] = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
        "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his "
        "shortest and one of his most farcical comedies, with a major part of the humour coming "
        "from slapstick and mistaken identity, in addition to puns and word play."
    ),
}
DETAILS: Mapping[str, Any] = {
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}
REVIEWS: tuple[tuple[str, str], ...] = (
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
        "plays by Shakespeare.",
    ),
)
RATINGS: Mapping[str, int] = {"Reviewer1": 5, "Reviewer2": 4}

_API_PATH = re.compile(r"/api/v1/products/(?P<id>[^/]+)(?P<what>/reviews|/ratings)?")


# -- HTTP in and out ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""

    def forwarded(self, user: str | None = None) -> dict[str, str]:
        """The headers to pass on; ``user`` (when given) is the ``end-user`` to name."""
        out = {k: self.headers[k] for k in FORWARD_HEADERS if k in self.headers}
        if user:
            out["end-user"] = user
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: object) -> Response:
    return Response(status, json.dumps(payload).encode())


def html_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, text.encode(), "text/html; charset=utf-8", headers)


def redirect(location: str, cookie: str) -> Response:
    return Response(302, b"", "text/plain", (("location", location), ("set-cookie", cookie)))


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What a call to another service gave: a status (0: no answer) and the JSON body."""

    status: int
    data: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.data, dict)


class MeshProxyHandler(urllib.request.ProxyHandler):
    """Send every ``http://`` call to the mesh proxy: ``NO_PROXY`` never applies, and a proxy URL
    with only a user name (``http://productpage@127.0.0.1:15001``) still names the caller."""

    def __init__(self, proxy_url: str) -> None:
        parts = urllib.parse.urlsplit(proxy_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"HTTP_PROXY must be an http:// proxy URL, not {proxy_url!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.hostport = f"{host}:{parts.port or 80}"
        self.workload = urllib.parse.unquote(parts.username or "")
        self.authorization = ""
        if parts.username:
            password = urllib.parse.unquote(parts.password or "")
            creds = f"{self.workload}:{password}".encode()
            self.authorization = "Basic " + base64.b64encode(creds).decode("ascii")
        super().__init__({"http": proxy_url})

    def proxy_open(self, req: urllib.request.Request, proxy: str, type: str) -> None:
        if self.authorization:
            req.add_header("Proxy-Authorization", self.authorization)
        req.set_proxy(self.hostport, "http")


class Mesh:
    """The outbound side of a service: GETs of JSON through the mesh proxy, never direct."""

    def __init__(self, proxy_url: str) -> None:
        self.handler = MeshProxyHandler(proxy_url)
        self._opener = urllib.request.build_opener(self.handler)

    def get_json(self, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        request = urllib.request.Request(url, headers=dict(headers))
        try:
            with self._opener.open(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as e:
            with e:
                return Answer(e.code, None, f"{url} answered {e.code}")
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out
            return Answer(0, None, f"{url}: {e}")
        try:
            return Answer(status, json.loads(body))
        except ValueError:
            return Answer(status, None, f"{url} answered something that is not JSON")


def _product_id(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def _resource_id(path: str, collection: str) -> str | None:
    """``"0"`` for ``/details/0`` when ``collection`` is ``details``; None for other paths."""
    prefix = f"/{collection}/"
    rest = path.removeprefix(prefix)
    return rest if path.startswith(prefix) and rest and "/" not in rest else None


# -- the services --------------------------------------------------------------------------------


class Service:
    name = ""

    def __init__(self, version: str = "v1") -> None:
        self.version = version

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def handle(self, req: Request) -> Response:
        if req.method == "GET" and req.path == "/health":
            return json_response(200, {"status": f"{self.name.capitalize()} is healthy"})
        return self.route(req)

    def route(self, req: Request) -> Response:
        raise NotImplementedError

    def not_found(self, req: Request) -> Response:
        return json_response(404, {"error": f"{req.method} {req.path}: not found"})


class Details(Service):
    name = "details"

    def route(self, req: Request) -> Response:
        if req.method == "GET" and (raw := _resource_id(req.path, "details")) is not None:
            pid = _product_id(raw)
            if pid is None:
                return json_response(400, {"error": "please provide numeric product id"})
            return json_response(200, {"id": pid, **DETAILS})
        return self.not_found(req)


class Ratings(Service):
    name = "ratings"

    def route(self, req: Request) -> Response:
        if req.method == "GET" and (raw := _resource_id(req.path, "ratings")) is not None:
            pid = _product_id(raw)
            if pid is None:
                return json_response(400, {"error": "please provide numeric product ID"})
            return json_response(200, {"id": pid, "ratings": dict(RATINGS)})
        return self.not_found(req)


class Reviews(Service):
    name = "reviews"

    def __init__(self, version: str, mesh: Mesh | None) -> None:
        super().__init__(version)
        self.mesh = mesh

    @property
    def ratings_enabled(self) -> bool:
        return self.version in RATINGS_TIMEOUT

    def route(self, req: Request) -> Response:
        if req.method == "GET" and (raw := _resource_id(req.path, "reviews")) is not None:
            pid = _product_id(raw)
            if pid is None:
                return json_response(400, {"error": "please provide numeric product ID"})
            return json_response(200, self.reviews(pid, req))
        return self.not_found(req)

    def reviews(self, pid: int, req: Request) -> dict[str, Any]:
        ratings: Mapping[str, Any] | None = None
        if self.ratings_enabled:
            assert self.mesh is not None
            answer = self.mesh.get_json(
                f"{RATINGS_URL}/{pid}", req.forwarded(), RATINGS_TIMEOUT[self.version]
            )
            if answer.ok and isinstance(answer.data.get("ratings"), dict):
                ratings = answer.data["ratings"]
        reviews = []
        for reviewer, text in REVIEWS:
            review: dict[str, Any] = {"reviewer": reviewer, "text": text}
            if self.ratings_enabled:
                stars = ratings.get(reviewer) if ratings is not None else None
                if isinstance(stars, int):
                    review["rating"] = {"stars": stars, "color": STAR_COLOR[self.version]}
                elif ratings is None:
                    review["rating"] = {"error": RATINGS_ERROR}
            reviews.append(review)
        return {
            "id": str(pid),
            "podname": f"reviews-{self.version}",
            "clustername": "null",
            "reviews": reviews,
        }


class ProductPage(Service):
    name = "productpage"

    def __init__(self, mesh: Mesh) -> None:
        super().__init__("v1")
        self.mesh = mesh

    def details(self, pid: int, req: Request, user: str) -> Answer:
        return self.mesh.get_json(f"{DETAILS_URL}/{pid}", req.forwarded(user), DETAILS_TIMEOUT)

    def reviews(self, pid: int, req: Request, user: str) -> Answer:
        answer = Answer(0)
        for _ in range(REVIEWS_TRIES):  # any failure, an error status included, is tried again
            answer = self.mesh.get_json(
                f"{REVIEWS_URL}/{pid}", req.forwarded(user), REVIEWS_TIMEOUT
            )
            if answer.ok:
                break
        return answer

    def ratings(self, pid: int, req: Request, user: str) -> Answer:
        return self.mesh.get_json(f"{RATINGS_URL}/{pid}", req.forwarded(user), DETAILS_TIMEOUT)

    def route(self, req: Request) -> Response:
        user = _user(req)
        path = req.path
        if path == "/login" and req.method in ("GET", "POST"):
            form = dict(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace")))
            name = (form.get("username") or req.query.get("username") or "").strip()
            if not name:
                return redirect("/productpage", "user=; Path=/; Max-Age=0")
            return redirect("/productpage", f"user={urllib.parse.quote(name)}; Path=/")
        if path == "/logout" and req.method == "GET":
            return redirect("/productpage", "user=; Path=/; Max-Age=0")
        if req.method != "GET":
            return self.not_found(req)
        if path == "/":
            return html_response(200, _page("Simple Bookstore App", _INDEX))
        if path == "/productpage":
            pid = PRODUCT["id"]
            details = self.details(pid, req, user)
            reviews = self.reviews(pid, req, user)
            return html_response(200, render_productpage(user, details, reviews))
        if path == "/api/v1/products":
            return json_response(200, [dict(PRODUCT)])
        if m := _API_PATH.fullmatch(path):
            pid = _product_id(m.group("id"))
            if pid is None:
                return json_response(400, {"error": "please provide numeric product id"})
            call = {None: self.details, "/reviews": self.reviews, "/ratings": self.ratings}
            answer = call[m.group("what")](pid, req, user)
            if answer.ok:
                return json_response(200, answer.data)
            return json_response(answer.status or 503, {"error": answer.error})
        return self.not_found(req)


def _user(req: Request) -> str:
    """The signed-in user: the ``end-user`` header (as forwarded to productpage), or the cookie."""
    if user := req.headers.get("end-user", "").strip():
        return user
    try:
        cookie = SimpleCookie(req.headers.get("cookie", ""))
    except CookieError:
        return ""
    morsel = cookie.get("user")
    return urllib.parse.unquote(morsel.value) if morsel is not None else ""


# -- the page --------------------------------------------------------------------------------


_INDEX = """<h1>Hello! This is a simple bookstore application consisting of three services</h1>
<p>Click on one of the links below to auto generate a request to the backend as a real user or a
tester.</p>
<p><a href="/productpage?u=normal">Normal user</a></p>
<p><a href="/productpage?u=test">Test user</a></p>"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _stars(rating: Mapping[str, Any]) -> str:
    if "error" in rating:
        return f'<p class="rating-error">{html.escape(str(rating["error"]))}</p>'
    stars = rating.get("stars")
    if not isinstance(stars, int):
        return ""
    stars = max(0, min(stars, 5))
    color = html.escape(str(rating.get("color", "black")))
    label = f"{stars} {color} stars"
    return (
        f'<p class="rating"><span class="stars" style="color: {color}" title="{label}">'
        f"{'★' * stars}{'☆' * (5 - stars)}</span> <small>{label}</small></p>"
    )


def render_productpage(user: str, details: Answer, reviews: Answer) -> str:
    esc = html.escape
    if user:
        nav = f'<nav>Signed in as <b>{esc(user)}</b> · <a href="/logout">Sign out</a></nav>'
    else:
        nav = (
            '<nav><form method="post" action="/login">'
            '<input name="username" placeholder="User name"> '
            '<button type="submit">Sign in</button></form></nav>'
        )
    parts = [nav, f"<h1>{esc(PRODUCT['title'])}</h1>", f"<p>{PRODUCT['descriptionHtml']}</p>"]
    parts.append('<section class="details">')
    if details.ok:
        d = details.data
        parts.append("<h2>Book Details</h2><dl>")
        for key in ("author", "year", "type", "pages", "publisher", "language"):
            parts.append(f"<dt>{key.capitalize()}</dt><dd>{esc(str(d.get(key, '')))}</dd>")
        for key in ("ISBN-10", "ISBN-13"):
            parts.append(f"<dt>{key}</dt><dd>{esc(str(d.get(key, '')))}</dd>")
        parts.append("</dl>")
    else:
        parts.append(f"<h2>{DETAILS_ERROR}</h2><p>{DETAILS_SORRY}</p>")
    parts.append("</section>")
    parts.append('<section class="reviews">')
    items = reviews.data.get("reviews") if reviews.ok else None
    if isinstance(items, list):
        parts.append("<h2>Book Reviews</h2>")
        for review in items:
            if not isinstance(review, dict):
                continue
            parts.append(
                f"<blockquote><p>{esc(str(review.get('text', '')))}</p>"
                f"<small>{esc(str(review.get('reviewer', '')))}</small>"
            )
            if isinstance(rating := review.get("rating"), dict):
                parts.append(_stars(rating))
            parts.append("</blockquote>")
        served_by = esc(str(reviews.data.get("podname")))
        parts.append(f"<p><small>Reviews served by: {served_by}</small></p>")
    else:
        parts.append(f"<h2>{REVIEWS_ERROR}</h2><p>{REVIEWS_SORRY}</p>")
    parts.append("</section>")
    return _page("Simple Bookstore App", "\n".join(parts))


# -- the server ------------------------------------------------------------------------------


class BookinfoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Service) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away: nothing to say
            return
        print(f"bookinfo {self.app.label}: {type(exc).__name__}: {exc}", file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bookinfo"
    timeout = 300  # idle keep-alive connections are closed after 5 minutes
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # peer's delayed ACK add ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet, always
        pass

    def _serve(self) -> None:
        app = cast(BookinfoServer, self.server).app
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "bad content-length")
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        if "://" in path:  # absolute form
            path = urllib.parse.urlsplit(self.path).path or "/"
            query = urllib.parse.urlsplit(self.path).query
        req = Request(
            self.command,
            path,
            dict(urllib.parse.parse_qsl(query)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        try:
            resp = app.handle(req)
        except Exception as e:  # a bug here must not take the service down
            print(f"bookinfo {app.label}: {type(e).__name__}: {e}", file=sys.stderr)
            resp = json_response(500, {"error": "internal error"})
        self.send_response(resp.status)
        self.send_header("content-type", resp.content_type)
        self.send_header("content-length", str(len(resp.body)))
        for name, value in resp.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()


# -- command line -----------------------------------------------------------------------------


def make_app(service: str, version: str, environ: Mapping[str, str]) -> Service:
    """The service, with its mesh client when it calls others; ValueError when it cannot run."""
    if version not in VERSIONS[service]:
        raise ValueError(f"{service} has versions {', '.join(VERSIONS[service])}, not {version}")
    calls_out = service == "productpage" or (service == "reviews" and version in RATINGS_TIMEOUT)
    mesh = None
    if calls_out:
        proxy = environ.get("HTTP_PROXY") or environ.get("http_proxy")
        if not proxy:
            raise ValueError(
                f"{service} {version} calls other services only through the mesh: set "
                f"HTTP_PROXY to the chaoskit proxy, naming the caller "
                f"(http://{service}:x@127.0.0.1:15001)"
            )
        mesh = Mesh(proxy)
    if service == "productpage":
        assert mesh is not None
        return ProductPage(mesh)
    if service == "reviews":
        return Reviews(version, mesh)
    return Details(version) if service == "details" else Ratings(version)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chaoskit.demo.bookinfo",
        description="Run one Bookinfo service on 127.0.0.1 (outbound calls through HTTP_PROXY).",
    )
    p.add_argument("service", choices=sorted(VERSIONS), help="the service to run")
    p.add_argument("--version", default="v1", help="v1 (default); reviews also has v2 and v3")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="port to listen on (default: the demo mesh's port for this service and version; "
        "0: any free port)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # First thing, so that a signal during start-up is a clean exit as well.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args = parse_args(argv)
    try:
        app = make_app(args.service, args.version, os.environ)
    except ValueError as e:
        print(f"bookinfo: error: {e}", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else PORTS[(args.service, args.version)]
    try:
        server = BookinfoServer((HOST, port), app)
    except OSError as e:
        print(f"bookinfo: error: cannot listen on {HOST}:{port}: {e.strerror}", file=sys.stderr)
        return 2
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    print(f"{app.label} listening on http://{HOST}:{server.server_address[1]}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
