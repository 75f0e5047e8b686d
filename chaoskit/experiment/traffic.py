"""Driving traffic: N requests or a duration, at a concurrency or a rate, bounded always.

Each request gets its own ``x-request-id`` (from the run's seeded stream), so its proxy record —
flags, retries, what was injected — can be joined to the sample afterwards.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from chaoskit.config.experiment import Target, Traffic
from chaoskit.experiment.journal import Sample

#: Never send more than this many requests in one phase, whatever the spec says.
MAX_REQUESTS_PER_PHASE = 100_000


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A target made concrete: the final URL and the proxy to use (``None`` = direct)."""

    target: Target
    url: str
    proxy: str | None


class Driver:
    """Sends a phase's traffic from worker threads; every loop is bounded."""

    def __init__(
        self,
        traffic: Traffic,
        resolve: Callable[[Target], Endpoint],
        rng: random.Random,
        *,
        on_sample: Callable[[Sample], None] = lambda s: None,
    ) -> None:
        self.traffic = traffic
        self.endpoints = [resolve(t) for t in traffic.targets]
        self.weights = [t.weight for t in traffic.targets]
        self.rng = rng
        self.on_sample = on_sample
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

    def one(self, t0: float, phase: str, faulted: Callable[[], bool]) -> Sample:
        endpoint, request_id = self._pick()
        target = endpoint.target
        headers = {**target.headers, "x-request-id": request_id}
        proxies = {"http": endpoint.proxy, "https": endpoint.proxy} if endpoint.proxy else {}
        was_faulted = faulted()
        start = time.monotonic()
        status, error = 0, ""
        try:
            r = self._session().request(
                target.method,
                endpoint.url,
                headers=headers,
                data=target.body,
                proxies=proxies,
                timeout=self.traffic.timeout,
                allow_redirects=False,
            )
            status = r.status_code
        except requests.Timeout:
            error = f"client timeout after {self.traffic.timeout:g}s"
        except requests.RequestException as e:
            error = type(e).__name__
        latency = time.monotonic() - start
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
        limit = min(tr.requests or MAX_REQUESTS_PER_PHASE, MAX_REQUESTS_PER_PHASE)
        begin = time.monotonic()
        deadline = begin + tr.duration if tr.duration is not None else None
        counter = iter(range(limit))
        samples: list[Sample] = []

        def worker() -> None:
            while not stop.is_set():
                with self._lock:
                    i = next(counter, None)
                if i is None:
                    return
                if tr.rate is not None:  # open-loop schedule: request i starts at i / rate
                    wait = begin + i / tr.rate - time.monotonic()
                    if wait > 0 and stop.wait(wait):
                        return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                sample = self.one(t0, phase, faulted)
                with self._lock:
                    samples.append(sample)

        with ThreadPoolExecutor(tr.concurrency, thread_name_prefix="chaoskit-traffic") as pool:
            for future in [pool.submit(worker) for _ in range(tr.concurrency)]:
                future.result()
        return sorted(samples, key=lambda s: s.t)
