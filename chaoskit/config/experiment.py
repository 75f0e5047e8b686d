"""``Experiment`` (chaoskit.dev/v1alpha1): a chaos experiment as one reviewable YAML resource.

Chaos Toolkit's model — steady-state hypothesis, method, rollbacks — with what its users asked for
(chaostoolkit/chaostoolkit#103, #104): checks *during* the fault, typed results, and nothing but
YAML to write::

    spec:
      mesh: [mesh/]                       # config files, relative to the experiment file
      apps: [{name, command, ready, workload, env}]   # started with HTTP_PROXY set
      traffic: {requests | duration, concurrency | rate, targets: [{url, via, headers, ...}]}
      hypothesis: {successRate, allowedStatuses, latency: {p50, p95, p99}, probes: [...]}
      faults: [{name, resources | files, after, for}]  # Istio patches and/or UpstreamFaults
      during: {...}                       # what must hold while faults are on (default: hypothesis)
      rollbacks: [{name, command}]        # extra steps; the mesh config is always restored

Target URLs may use ``${gateway:PORT}`` for a Gateway listener's address and ``${proxy}`` for the
forward proxy, since their ports are known only at run time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from chaoskit.config.fields import Fields
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.yamlsource import Location, YList, YMap

VIA = ("mesh", "direct")
_PLACEHOLDER = re.compile(r"\$\{(proxy|gateway:\d{1,5})\}")


@dataclasses.dataclass(frozen=True, slots=True)
class App:
    """A process under test, started with the proxy environment set."""

    name: str
    command: tuple[str, ...]
    ready: str | None = None
    ready_timeout: float = 15.0
    workload: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One kind of request the traffic generator sends."""

    url: str
    name: str = ""
    method: str = "GET"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: str | None = None
    via: str = "mesh"  # "mesh": through the forward proxy; "direct": straight to the URL
    workload: str | None = None  # the caller's identity for via: mesh
    weight: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Traffic:
    targets: tuple[Target, ...]
    requests: int | None = None
    duration: float | None = None
    concurrency: int = 1
    rate: float | None = None  # requests per second, over all workers
    timeout: float = 30.0  # the traffic client's own timeout per request


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """A request whose answer must meet expectations."""

    name: str
    target: Target
    status: tuple[int, ...] = ()
    body_contains: tuple[str, ...] = ()
    body_not_contains: tuple[str, ...] = ()
    max_latency: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Hypothesis:
    """What "working" means, checked over the traffic of a phase and by probes."""

    success_rate: float | None = None  # fraction of requests answered with an allowed status
    allowed_statuses: tuple[int, ...] = ()
    latency: Mapping[str, float] = dataclasses.field(default_factory=dict)  # {"p95": 1.0}
    probes: tuple[Probe, ...] = ()

    @property
    def empty(self) -> bool:
        return self.success_rate is None and not self.latency and not self.probes


@dataclasses.dataclass(frozen=True, slots=True)
class FaultPhase:
    """Resources layered over the mesh while the method runs, from ``after`` for ``for``."""

    name: str
    files: tuple[str, ...] = ()
    resources: tuple[Mapping[str, object], ...] = ()
    after: float = 0.0
    duration: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Rollback:
    name: str
    command: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Experiment(Resource):
    KIND = "Experiment"

    title: str = ""
    description: str = ""
    seed: int | None = None
    mesh: tuple[str, ...] = ()
    apps: tuple[App, ...] = ()
    traffic: Traffic | None = None
    hypothesis: Hypothesis = Hypothesis()
    faults: tuple[FaultPhase, ...] = ()
    during: Hypothesis | None = None
    rollbacks: tuple[Rollback, ...] = ()


def _plain(value: object) -> object:
    """YAML nodes → plain dicts and lists (fault resources are re-validated when applied)."""
    if isinstance(value, YMap):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, YList):
        return [_plain(v) for v in value]
    return value


def _command(f: Fields, key: str) -> tuple[str, ...]:
    cmd = f.str_list(key, required=True)
    if f.has(key) and not cmd:
        f.error(key, "command must not be empty")
    return cmd


def _target(f: Fields) -> Target | None:
    url = f.str("url", required=True)
    via = f.enum("via", VIA) or "mesh"
    method = (f.str("method") or "GET").upper()
    headers = f.str_map("headers", scalars_as_text=True)
    body = f.str("body")
    workload = f.str("workload")
    weight = f.int("weight", minimum=1) or 1
    name = f.str("name") or ""
    f.done()
    if url is None:
        return None
    bare = _PLACEHOLDER.sub("http://placeholder:1", url)
    if not bare.startswith(("http://", "https://")):
        f.error(
            "url", f"{url!r} is not an http(s) URL (placeholders: ${{proxy}}, ${{gateway:PORT}})"
        )
        return None
    return Target(url, name or f"{method} {url}", method, headers, body, via, workload, weight)


def _hypothesis(f: Fields | None) -> Hypothesis:
    if f is None:
        return Hypothesis()
    rate = f.number("successRate")
    if rate is not None and not 0 <= rate <= 1:
        f.error("successRate", f"{rate:g} is not a fraction between 0 and 1 (0.99 = 99%)")
        rate = None
    statuses = []
    for path, value, loc in f.list("allowedStatuses"):
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            statuses.append(value)
        else:
            f.ctx.issues.error(loc, f.ctx.resource, path, f"{value!r} is not an HTTP status")
    latency: dict[str, float] = {}
    if (lat := f.obj("latency")) is not None:
        for key in ("p50", "p90", "p95", "p99", "max"):
            if (value := lat.duration(key, istio_rules=False)) is not None:
                latency[key] = value
        lat.done()
    probes = []
    for pf in f.objs("probes"):
        name = pf.str("name", required=True) or "probe"
        tf = pf.obj("request", required=True)
        target = _target(tf) if tf is not None else None
        expect = pf.obj("expect")
        status: tuple[int, ...] = ()
        contains: tuple[str, ...] = ()
        not_contains: tuple[str, ...] = ()
        max_latency = None
        if expect is not None:
            one = expect.int("status", minimum=100, maximum=599)
            status = (one,) if one is not None else ()
            contains = expect.str_list("bodyContains")
            not_contains = expect.str_list("bodyNotContains")
            max_latency = expect.duration("maxLatency", istio_rules=False)
            expect.done()
        pf.done()
        if target is not None:
            probes.append(Probe(name, target, status, contains, not_contains, max_latency))
    f.done()
    if rate is not None and not statuses:
        statuses = [200]
    return Hypothesis(rate, tuple(statuses), latency, tuple(probes))


def parse_experiment(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> Experiment:
    """Read an Experiment ``spec``; file paths stay as written (resolved by the runner)."""
    title = spec.str("title") or metadata.name
    description = spec.str("description") or ""
    seed = spec.int("seed", minimum=0)
    mesh = spec.str_list("mesh")
    apps = []
    for af in spec.objs("apps"):
        name = af.str("name", required=True) or "app"
        command = _command(af, "command")
        ready = af.str("ready")
        ready_timeout = af.duration("readyTimeout", istio_rules=False) or 15.0
        workload = af.str("workload")
        env = af.str_map("env", scalars_as_text=True)
        af.done()
        apps.append(App(name, command, ready, ready_timeout, workload, env))
    traffic = None
    if (tf := spec.obj("traffic")) is not None:
        targets = tuple(t for t in (_target(x) for x in tf.objs("targets", required=True)) if t)
        requests = tf.int("requests", minimum=1)
        duration = tf.duration("duration", istio_rules=False)
        concurrency = tf.int("concurrency", minimum=1, maximum=500) or 1
        rate = tf.number("rate")
        timeout = tf.duration("timeout", istio_rules=False) or 30.0
        tf.done()
        if (requests is None) == (duration is None):
            tf.error(None, "set exactly one of requests, duration")
        if rate is not None and rate <= 0:
            tf.error("rate", "rate must be a positive number of requests per second")
            rate = None
        traffic = Traffic(targets, requests, duration, concurrency, rate, timeout)
    hypothesis = _hypothesis(spec.obj("hypothesis"))
    during = _hypothesis(d) if (d := spec.obj("during")) is not None else None
    faults = []
    for i, ff in enumerate(spec.objs("faults")):
        name = ff.str("name") or f"fault-{i + 1}"
        files = ff.str_list("files")
        resources = tuple(
            v for _, v, _ in ff.list("resources") if isinstance(v, YMap)
        )  # checked when the phase is applied, with the mesh
        for path, value, loc in ff.list("resources"):
            if not isinstance(value, YMap):
                ff.ctx.issues.error(loc, ff.ctx.resource, path, "must be a resource (a mapping)")
        after = ff.duration("after", istio_rules=False, allow_zero=True) or 0.0
        duration = ff.duration("for", istio_rules=False)
        ff.done()
        if not files and not resources:
            ff.error(None, "a fault phase needs files or resources")
        plain = tuple(_plain(r) for r in resources)
        faults.append(FaultPhase(name, files, plain, after, duration))  # type: ignore[arg-type]
    rollbacks = []
    for rf in spec.objs("rollbacks"):
        rollbacks.append(
            Rollback(rf.str("name", required=True) or "rollback", _command(rf, "command"))
        )
        rf.done()
    spec.done()
    if traffic is None and hypothesis.empty:
        spec.error(None, "an experiment needs traffic or probes to observe anything")
    if hypothesis.empty and (during is None or during.empty):
        spec.warn("hypothesis", "no hypothesis: the experiment cannot deviate")
    return Experiment(
        api_version=api_version, metadata=metadata, location=location, title=title,
        description=description, seed=seed, mesh=mesh, apps=tuple(apps), traffic=traffic,
        hypothesis=hypothesis, faults=tuple(faults), during=during, rollbacks=tuple(rollbacks),
    )  # fmt: skip
