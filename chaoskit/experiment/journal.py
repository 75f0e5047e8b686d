"""The journal: everything a run did and saw, as typed objects and as JSON (schema 1).

One journal feeds every output: ``--journal`` writes it, ``--junit`` and ``--report`` render it.
Times are seconds since the run started (``t``) unless named ``*_at`` (ISO 8601, UTC).
Every output goes through :meth:`Journal.redacted` first: credential header values, credential
query parameters and URL passwords never reach a file (:mod:`chaoskit.redaction`).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from chaoskit.redaction import redact_text, redact_yaml

SCHEMA = 1

#: Phase names, in run order.
BEFORE = "steady-state-before"
METHOD = "method"
AFTER = "steady-state-after"

HELD = "held"
DEVIATED = "deviated"
#: The steady state did not hold before any fault was injected: the method was skipped, so
#: nothing is known about the faults — not a deviation (Chaos Toolkit ends such a run
#: ``failed`` with ``deviated: false``, chaostoolkit-lib chaoslib/run.py run_gate_hypothesis).
NOT_STEADY = "not-steady"
ERROR = "error"
INTERRUPTED = "interrupted"


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One traffic request: when, to what, how it ended, and what the mesh did to it."""

    t: float
    phase: str
    target: str
    status: int  # 0: no HTTP answer (connection error, client timeout)
    latency: float
    error: str = ""
    request_id: str = ""
    flags: tuple[str, ...] = ()  # Envoy response flags of the proxy's record, when it had one
    retries: int = 0
    faulted: bool = False  # the fault phase was active when the request started


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One hypothesis check: what was expected, what was seen, and why it failed."""

    phase: str
    name: str
    kind: str  # "success_rate", "latency", "probe"
    expected: str
    observed: str
    ok: bool
    detail: str = ""


@dataclasses.dataclass(slots=True)
class Phase:
    name: str
    start: float
    end: float = 0.0
    checks: list[Check] = dataclasses.field(default_factory=list)
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)  # "200": n, "error": n
    flags: dict[str, int] = dataclasses.field(default_factory=dict)  # "UT": n (proxy records)
    stats: dict[str, float] = dataclasses.field(default_factory=dict)  # counter deltas
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclasses.dataclass(frozen=True, slots=True)
class FaultWindow:
    name: str
    start: float
    end: float | None
    resources: tuple[str, ...] = ()  # Kind/namespace/name of what was applied


@dataclasses.dataclass(frozen=True, slots=True)
class StepResult:
    """A rollback or app step: what ran and how it ended."""

    name: str
    ok: bool
    detail: str = ""


@dataclasses.dataclass(slots=True)
class Journal:
    experiment: str
    title: str
    file: str
    seed: int
    started_at: str
    versions: dict[str, str]
    status: str = HELD
    exit_code: int = 0
    duration: float = 0.0
    phases: list[Phase] = dataclasses.field(default_factory=list)
    faults: list[FaultWindow] = dataclasses.field(default_factory=list)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    rollbacks: list[StepResult] = dataclasses.field(default_factory=list)
    lessons: list[str] = dataclasses.field(default_factory=list)
    config: dict[str, str] = dataclasses.field(default_factory=dict)  # file → YAML text
    error: str = ""
    schema: int = SCHEMA

    @property
    def checks(self) -> list[Check]:
        return [c for p in self.phases for c in p.checks]

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def redacted(self) -> Journal:
        """A copy safe to write: credentials in the configuration, check names and details,
        notes, lessons, errors, command output and the samples' targets (a target is named
        ``GET <url>`` by default, query included) replaced."""
        r = redact_text
        targets = {t: r(t) for t in {s.target for s in self.samples}}
        return dataclasses.replace(
            self,
            title=r(self.title),
            file=r(self.file),
            error=r(self.error),
            lessons=[r(x) for x in self.lessons],
            config={name: redact_yaml(text) for name, text in self.config.items()},
            samples=[
                dataclasses.replace(s, target=targets[s.target])
                if targets[s.target] != s.target
                else s
                for s in self.samples
            ],
            rollbacks=[dataclasses.replace(s, detail=r(s.detail)) for s in self.rollbacks],
            phases=[
                dataclasses.replace(
                    p,
                    notes=[r(n) for n in p.notes],
                    checks=[
                        dataclasses.replace(
                            c,
                            name=r(c.name),
                            expected=r(c.expected),
                            observed=r(c.observed),
                            detail=r(c.detail),
                        )
                        for c in p.checks
                    ],
                )
                for p in self.phases
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.redacted())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        j = cls(
            **{
                k: v
                for k, v in data.items()
                if k not in ("phases", "faults", "samples", "rollbacks")
            }
        )
        j.phases = [
            Phase(**{**p, "checks": [Check(**c) for c in p["checks"]]}) for p in data["phases"]
        ]
        j.faults = [
            FaultWindow(**{**f, "resources": tuple(f["resources"])}) for f in data["faults"]
        ]
        j.samples = [Sample(**{**s, "flags": tuple(s["flags"])}) for s in data["samples"]]
        j.rollbacks = [StepResult(**r) for r in data["rollbacks"]]
        return j


def summarize(samples: list[Sample]) -> tuple[dict[str, int], dict[str, int]]:
    """Status and flag counts of some samples (``"error"`` for requests with no answer)."""
    statuses: Counter[str] = Counter(str(s.status) if s.status else "error" for s in samples)
    flags: Counter[str] = Counter(f for s in samples for f in s.flags)
    return dict(sorted(statuses.items())), dict(sorted(flags.items()))
