"""Driving traffic: N requests or a duration, at a concurrency or a rate, bounded always.

Each request gets its own ``x-request-id`` (from the run's seeded stream), so its proxy record —
flags, retries, what was injected — can be joined to the sample afterwards. When requests start
is decided by :class:`~chaoskit.experiment.schedule.Pacing`; the clock, the sleep and the
sending are injected, so tests drive it on a fake clock without sockets.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import requests

from chaoskit.clock import SYSTEM_CLOCK, Clock
from chaoskit.config.experiment import Target, Traffic
from chaoskit.experiment.journal import Sample
from chaoskit.experiment.schedule import MAX_REQUESTS_PER_PHASE, Pacing

__all__ = ["MAX_REQUESTS_PER_PHASE", "Driver", "Endpoint", "Send", "Sleep", "event_sleep"]

#: An interruptible sleep: wait up to ``seconds``, returning ``True`` (at once) when ``event``
#: is set — ``threading.Event.wait``'s contract. The runner's threads sleep only through one,
#: so Ctrl-C (the ``stop`` event) ends every wait, and a test passes a fake that moves a fake
#: clock instead (:class:`chaoskit.testing.clock.FakeThreadSleep`).
Sleep = Callable[[float, threading.Event], bool]


def event_sleep(seconds: float, event: threading.Event) -> bool:
    """The real :data:`Sleep`."""
    return event.wait(seconds)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A target made concrete: the final URL and the proxy to use (``None`` = direct)."""

    target: Target
    url: str
    proxy: str | None


#: Sends one request (the endpoint's target with these headers) and says how it ended: the
#: HTTP status (``0``: no answer) and, without one, the error in words.
Send = Callable[[Endpoint, Mapping[str, str]], tuple[int, str]]


class Driver:
    """Sends a phase's traffic from worker threads; every loop is bounded."""

    def __init__(
        self,
        traffic: Traffic,
        resolve: Callable[[Target], Endpoint],
        rng: random.Random,
        *,
        on_sample: Callable[[Sample], None] = lambda s: None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = event_sleep,
        send: Send | None = None,
    ) -> None:
        self.traffic = traffic
        self.endpoints = [resolve(t) for t in traffic.targets]
        self.weights = [t.weight for t in traffic.targets]
        self.rng = rng
        self.on_sample = on_sample
        self.clock = clock
        self.sleep = sleep
        self.send: Send = send if send is not None else self._http
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False
            self._local.session = s
        return s

    def _pick(self) -> tuple[Endpoint, str]:
        with self._lock:  # one seeded stream, so the order of picks is the same every run
            endpoint = self.rng.choices(self.endpoints, weights=self.weights)[0]
            request_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return endpoint, request_id

    def _http(self, endpoint: Endpoint, headers: Mapping[str, str]) -> tuple[int, str]:
        """The real :data:`Send`: one request with this thread's session, never redirected."""
        target = endpoint.target
        proxies = {"http": endpoint.proxy, "https": endpoint.proxy} if endpoint.proxy else {}
        try:
            r = self._session().request(
                target.method,
                endpoint.url,
                headers=dict(headers),
                data=target.body,
                proxies=proxies,
                timeout=self.traffic.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            return 0, f"client timeout after {self.traffic.timeout:g}s"
        except requests.RequestException as e:
            return 0, type(e).__name__
        return r.status_code, ""

    def one(self, t0: float, phase: str, faulted: Callable[[], bool]) -> Sample:
        endpoint, request_id = self._pick()
        target = endpoint.target
        headers = {**target.headers, "x-request-id": request_id}
        was_faulted = faulted()
        start = self.clock.monotonic()
        status, error = self.send(endpoint, headers)
        latency = self.clock.monotonic() - start
        sample = Sample(
            start - t0, phase, target.name, status, latency, error, request_id, (), 0, was_faulted
        )
        self.on_sample(sample)
        return sample

    def run(
        self,
        t0: float,
        phase: str,
        stop: threading.Event,
        faulted: Callable[[], bool] = lambda: False,
    ) -> list[Sample]:
        """Drive the phase's traffic; returns the samples in the order they started."""
        tr = self.traffic
        pacing = Pacing.of(tr)
        begin = self.clock.monotonic()
        deadline = pacing.deadline(begin)
        counter = iter(range(pacing.limit))
        samples: list[Sample] = []

        def worker() -> None:
            while not stop.is_set():
                with self._lock:
                    i = next(counter, None)
                if i is None:
                    return
                if (start := pacing.start_of(begin, i)) is not None:
                    wait = start - self.clock.monotonic()
                    if wait > 0 and self.sleep(wait, stop):
                        return
                if deadline is not None and self.clock.monotonic() >= deadline:
                    return
                sample = self.one(t0, phase, faulted)
                with self._lock:
                    samples.append(sample)

        with ThreadPoolExecutor(tr.concurrency, thread_name_prefix="chaoskit-traffic") as pool:
            for future in [pool.submit(worker) for _ in range(tr.concurrency)]:
                future.result()
        return sorted(samples, key=lambda s: s.t)
