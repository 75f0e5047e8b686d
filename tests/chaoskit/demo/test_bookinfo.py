"""Istio's Bookinfo tasks, reproduced: the demo services as real processes behind a real proxy.

One set of six processes (productpage, details, reviews v1/v2/v3, ratings) on the demo mesh's
fixed ports serves the whole module; each test layers Istio's variant files over the mesh with
``proxy.apply(...)`` and checks the result Istio's documentation gives for that task.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from chaoskit.demo import bookinfo
from chaoskit.proxy.api import Proxy
from chaoskit.records import Record

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MESH = ROOT / "experiments" / "bookinfo" / "mesh"
VARIANTS = ROOT / "experiments" / "bookinfo" / "variants"
#: (service, version, workload name in the mesh's WorkloadEntries)
APPS = (
    ("productpage", "v1", "productpage"),
    ("details", "v1", "details"),
    ("reviews", "v1", "reviews-v1"),
    ("reviews", "v2", "reviews-v2"),
    ("reviews", "v3", "reviews-v3"),
    ("ratings", "v1", "ratings"),
)
START_TIMEOUT = 15.0
LOCK_TIMEOUT = 120.0


def pause(seconds: float) -> None:
    time.sleep(seconds)  # noqa: TID251 - a test polling subprocesses, not the proxy loop


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never let the runner's own proxy settings in
    return s


@contextlib.contextmanager
def fixed_ports_lock() -> Iterator[None]:
    """Hold the demo mesh's fixed ports against other test runs on this machine (a second pytest
    session, xdist workers): they wait here, for a bounded time, instead of colliding."""
    path = Path(tempfile.gettempdir()) / "chaoskit-bookinfo-ports.lock"
    with path.open("a") as f:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"ports 19080-19085 still held by another run after {LOCK_TIMEOUT:g}s"
                    )
                pause(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def wait_healthy(procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> None:
    """Wait, for a bounded time, until every service has printed its ready line (so the port is
    its own, not some other run's) and answers /health directly (not through the mesh)."""
    deadline = time.monotonic() + START_TIMEOUT
    pending = {
        name: f"http://127.0.0.1:{bookinfo.PORTS[(service, version)]}/health"
        for service, version, name in APPS
    }
    with session() as s:
        while pending:
            for name, url in list(pending.items()):
                if procs[name].poll() is not None:
                    pytest.fail(
                        f"{name} exited with {procs[name].returncode}: {logs[name].read_text()}"
                    )
                if " listening on " not in logs[name].read_text():
                    continue
                try:
                    if s.get(url, timeout=1).status_code == 200:
                        del pending[name]
                except requests.ConnectionError:
                    pass
            if pending and time.monotonic() > deadline:
                pytest.fail(f"not healthy after {START_TIMEOUT:g}s: {sorted(pending)}")
            if pending:
                pause(0.05)


def stop(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    codes = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = proc.wait()
    return codes


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(MESH, seed=11, state_dir=state, gateway_ports={8080: 0}) as p:
        yield p


@pytest.fixture(scope="module")
def bookinfo_apps(proxy, tmp_path_factory) -> Iterator[Proxy]:
    """The six Bookinfo processes, calling out through the proxy under their workload names.

    ``NO_PROXY=*`` proves the apps never go direct: they would fail to resolve ``reviews``.
    """
    with fixed_ports_lock():
        yield from run_apps(proxy, tmp_path_factory.mktemp("bookinfo-logs"))


def run_apps(proxy: Proxy, logs_dir: Path) -> Iterator[Proxy]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        for service, version, name in APPS:
            env = {**os.environ, "HTTP_PROXY": proxy.url_for(name), "NO_PROXY": "*"}
            env.pop("http_proxy", None)
            logs[name] = logs_dir / f"{name}.log"
            with logs[name].open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "chaoskit.demo.bookinfo", service, "--version", version],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        wait_healthy(procs, logs)
        yield proxy
    finally:
        codes = stop(procs)
    assert codes == {name: 0 for _, _, name in APPS}, "a service did not exit cleanly on SIGTERM"
    for name, path in logs.items():  # quiet: the ready line and nothing per request
        lines = path.read_text().splitlines()
        assert len(lines) == 1 and " listening on http://127.0.0.1:" in lines[0], (name, lines)


@pytest.fixture
def mesh(bookinfo_apps) -> Proxy:
    """The base mesh (everything to v1), fresh records and seeded streams for each test."""
    bookinfo_apps.apply()
    bookinfo_apps.reset()
    return bookinfo_apps


def productpage(
    mesh: Proxy, user: str | None = None, via_gateway: bool = False
) -> tuple[str, float]:
    """Load the page as ``user`` (the ``end-user`` header); the page and its load time."""
    headers = {"end-user": user} if user else {}
    with session() as s:
        start = time.monotonic()
        if via_gateway:
            r = s.get(f"{mesh.gateway_url(8080)}/productpage", headers=headers, timeout=20)
        else:
            r = s.get(
                "http://productpage:9080/productpage",
                headers=headers,
                proxies={"http": mesh.url},
                timeout=20,
            )
        elapsed = time.monotonic() - start
    assert r.status_code == 200, r.text
    return r.text, elapsed


def wait_for_records(mesh: Proxy, where: Callable[[Record], bool], count: int) -> list[Record]:
    """The records ``where`` selects, once there are ``count`` (a record is written when its
    request ends, which for an abandoned request is when the proxy notices, a moment later)."""
    deadline = time.monotonic() + 2
    while len(found := [r for r in mesh.records if where(r)]) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"expected {count} records, found {len(found)}: {found}")
        pause(0.02)
    return found


def stars(page: str) -> str:
    """Which reviews the page shows: "none", "black", "red", or "error"."""
    if bookinfo.REVIEWS_ERROR in page:
        return "error"
    if "black stars" in page:
        return "black"
    if "red stars" in page:
        return "red"
    assert "★" not in page and "Book Reviews" in page
    return "none"


# -- request routing ---------------------------------------------------------------------------


def test_all_v1_shows_no_stars_for_anyone(mesh):
    for user in (None, "jason", "alice"):
        page, _ = productpage(mesh, user)
        assert stars(page) == "none"
        assert "Reviews served by: reviews-v1" in page
        assert "PublisherA" in page and bookinfo.DETAILS_ERROR not in page
    calls = {(r.source, r.host.split(".")[0], r.status) for r in mesh.records}
    assert calls == {
        ("", "productpage", 200),
        ("productpage", "details", 200),
        ("productpage", "reviews", 200),
    }


def test_the_gateway_serves_the_app_and_nothing_else(mesh):
    page, _ = productpage(mesh, "jason", via_gateway=True)
    assert "Signed in as <b>jason</b>" in page and stars(page) == "none"
    with session() as s:
        products = s.get(f"{mesh.gateway_url(8080)}/api/v1/products", timeout=5)
        assert products.json()[0]["title"] == "The Comedy of Errors"
        assert s.get(f"{mesh.gateway_url(8080)}/health", timeout=5).status_code == 404  # NR


def test_login_cookie_names_the_end_user(mesh):
    mesh.apply(VARIANTS / "reviews-test-v2.yaml")
    with session() as s:
        base = mesh.gateway_url(8080)
        login = s.post(f"{base}/login", data={"username": "jason"}, timeout=5)
        assert login.status_code == 200 and "black stars" in login.text  # followed the redirect
        s.get(f"{base}/logout", timeout=5)
        assert stars(s.get(f"{base}/productpage", timeout=5).text) == "none"


def test_reviews_test_v2_gives_jason_black_stars_and_others_none(mesh):
    mesh.apply(VARIANTS / "reviews-test-v2.yaml")
    page, _ = productpage(mesh, "jason")
    assert stars(page) == "black" and "Reviews served by: reviews-v2" in page
    assert "5 black stars" in page and "4 black stars" in page
    for user in (None, "alice"):
        assert stars(productpage(mesh, user)[0]) == "none"
    ratings = [r for r in mesh.records if r.host.startswith("ratings.")]
    assert [(r.source, r.status) for r in ratings] == [("reviews-v2", 200)]


def test_reviews_50_v3_shows_red_stars_about_half_the_time(mesh):
    mesh.apply(VARIANTS / "reviews-50-v3.yaml")
    seen = [stars(productpage(mesh)[0]) for _ in range(40)]
    assert set(seen) == {"none", "red"}
    assert 10 <= seen.count("red") <= 30, seen


# -- fault injection -------------------------------------------------------------------------


def test_ratings_delay_for_jason_breaks_his_page_after_six_seconds(mesh):
    """The fault-injection task: 7 s on ratings, but productpage gives up after 3 s + 1 retry."""
    mesh.apply(VARIANTS / "reviews-test-v2.yaml", VARIANTS / "ratings-test-delay.yaml")
    with ThreadPoolExecutor(1) as pool:
        jason = pool.submit(productpage, mesh, "jason")
        others = [productpage(mesh, user) for user in (None, "alice")]  # while jason waits
        page, elapsed = jason.result()
    assert 5.5 <= elapsed < 8, elapsed
    assert bookinfo.REVIEWS_ERROR in page and bookinfo.REVIEWS_SORRY in page
    assert "PublisherA" in page  # details are fine
    for other, other_elapsed in others:
        assert stars(other) == "none" and other_elapsed < 1, other_elapsed
    tries = wait_for_records(mesh, lambda r: r.source == "productpage" and "|v2|" in r.cluster, 2)
    assert [round(r.duration) for r in tries] == [3, 3]  # productpage gave up on each after 3 s
    assert all(" gave up after " in n for r in tries for n in r.notes), tries


def test_ratings_abort_for_jason_shows_ratings_unavailable(mesh):
    mesh.apply(VARIANTS / "reviews-test-v2.yaml", VARIANTS / "ratings-test-abort.yaml")
    page, elapsed = productpage(mesh, "jason")
    assert bookinfo.RATINGS_ERROR in page and "Reviews served by: reviews-v2" in page
    assert "★" not in page and elapsed < 2
    assert stars(productpage(mesh, "alice")[0]) == "none"
    (ratings,) = [r for r in mesh.records if r.host.startswith("ratings.")]
    assert ratings.status == 500 and "FI" in ratings.flags


def jason_to(subset: str) -> dict[str, object]:
    """reviews-test-v2.yaml with jason sent to ``subset`` instead."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": subset}}],
                },
                {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
            ],
        },
    }


def ratings_delay_for_jason(delay: str) -> str:
    """ratings-test-delay.yaml with another delay."""
    return (
        (VARIANTS / "ratings-test-delay.yaml")
        .read_text()
        .replace("fixedDelay: 7s", f"fixedDelay: {delay}")
    )


def test_reviews_v3_tolerates_a_ratings_delay_below_its_timeout(mesh):
    """The task's fix: reviews v3 waits 2.5 s for ratings, so a 2 s delay only slows the page."""
    mesh.apply(jason_to("v3"), ratings_delay_for_jason("2s"))
    page, elapsed = productpage(mesh, "jason")
    assert stars(page) == "red" and "Reviews served by: reviews-v3" in page
    assert 2 <= elapsed < 3, elapsed


def test_reviews_v3_gives_up_on_ratings_after_two_and_a_half_seconds(mesh):
    mesh.apply(jason_to("v3"), VARIANTS / "ratings-test-delay.yaml")
    page, elapsed = productpage(mesh, "jason")
    assert bookinfo.RATINGS_ERROR in page and "Reviews served by: reviews-v3" in page
    assert "★" not in page and bookinfo.REVIEWS_ERROR not in page
    assert 2.5 <= elapsed < 3.5, elapsed


def test_a_details_abort_shows_the_details_error_and_keeps_the_reviews(mesh):
    """fault-injection-details-v1.yaml: every details call aborted with HTTP 555."""
    mesh.apply(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "details"},
            "spec": {
                "hosts": ["details"],
                "http": [
                    {
                        "fault": {"abort": {"httpStatus": 555, "percentage": {"value": 100}}},
                        "route": [{"destination": {"host": "details", "subset": "v1"}}],
                    }
                ],
            },
        }
    )
    page, _ = productpage(mesh)
    assert bookinfo.DETAILS_ERROR in page and bookinfo.DETAILS_SORRY in page
    assert "PublisherA" not in page and stars(page) == "none"


# -- request timeouts ------------------------------------------------------------------------


def test_ratings_delay_slows_the_page_by_two_seconds(mesh):
    """The request-timeouts task, first step: reviews v2, ratings 2 s slow, no timeout."""
    mesh.apply(
        VARIANTS / "reviews-timeout.yaml",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews"},
            "spec": {
                "hosts": ["reviews"],
                "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}],
            },
        },
    )
    page, elapsed = productpage(mesh)
    assert stars(page) == "black"
    assert 2 <= elapsed < 3, elapsed


def test_reviews_timeout_returns_in_about_one_second_without_reviews(mesh):
    """Then reviews ``timeout: 0.5s``: productpage's one retry ⇒ two 0.5 s timeouts."""
    mesh.apply(VARIANTS / "reviews-timeout.yaml")
    page, elapsed = productpage(mesh)
    assert 0.9 <= elapsed < 1.8, elapsed
    assert bookinfo.REVIEWS_ERROR in page and "PublisherA" in page
    reviews = wait_for_records(mesh, lambda r: r.host.startswith("reviews."), 2)
    assert [(r.status, r.flags) for r in reviews] == [(504, ("UT",))] * 2


# -- the processes themselves ----------------------------------------------------------------


def test_the_apps_call_out_only_through_the_mesh_proxy():
    handler = bookinfo.MeshProxyHandler("http://productpage@127.0.0.1:15001")
    request = urllib.request.Request("http://reviews:9080/reviews/0")
    handler.proxy_open(request, "", "http")
    assert request.host == "127.0.0.1:15001" and request.selector == "http://reviews:9080/reviews/0"
    auth = request.get_header("Proxy-authorization")
    assert auth is not None and base64.b64decode(auth.split()[1]) == b"productpage:"
    with pytest.raises(ValueError, match="HTTP_PROXY"):
        bookinfo.make_app("productpage", "v1", {})
    with pytest.raises(ValueError, match="HTTP_PROXY"):
        bookinfo.make_app("reviews", "v3", {})
    assert bookinfo.make_app("reviews", "v1", {}).label == "reviews v1"  # v1 never calls out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_service_exits_cleanly_on_a_signal(sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaoskit.demo.bookinfo", "ratings", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ratings v1 listening on http://127.0.0.1:"), line
        with session() as s:
            r = s.get(f"{line.split()[-1]}/ratings/0", timeout=5)
        assert r.json() == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and out == "" and err == ""


def test_a_service_that_calls_out_refuses_to_start_without_a_proxy():
    env = {k: v for k, v in os.environ.items() if k.lower() != "http_proxy"}
    done = subprocess.run(
        [sys.executable, "-m", "chaoskit.demo.bookinfo", "productpage", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2 and "set HTTP_PROXY" in done.stderr
