"""``abort``: the attempt is answered *as if by the upstream* (not an Envoy local reply).

Retries, circuit breakers and outlier detection so see an upstream 503 (``retryOn`` decides
whether it is retried), unlike an Istio VirtualService ``fault.abort``, which Envoy's fault
filter answers before the router (istio/istio#13705).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chaoskit.config.fields import Fields, did_you_mean
from chaoskit.config.http_route import GRPC_STATUS
from chaoskit.faults.actions.base import Action, Examples, Stage, no_own_percentage

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclasses.dataclass(frozen=True, slots=True)
class FaultAbort:
    """An answer *as if from the upstream*: ``body`` ``None`` means an empty body."""

    http_status: int | None = None
    grpc_status: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AbortResponse:
    """The response an ``abort`` sends as if from the upstream (header names lower-case)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def of(cls, abort: FaultAbort) -> AbortResponse:
        """``httpStatus`` as is; ``grpcStatus`` as HTTP 200 with ``grpc-status`` (a gRPC
        trailers-only error, which is what a gRPC server answers; ``body`` is not sent)."""
        user = {k.lower(): v for k, v in abort.headers.items()}
        body = (abort.body or "").encode()
        if abort.grpc_status is not None:
            headers = {"content-type": "application/grpc", **user}
            headers["grpc-status"] = str(GRPC_STATUS[abort.grpc_status])
            return cls(200, tuple(headers.items()), b"")
        return cls(abort.http_status or 500, tuple(user.items()), body)


def parse_abort(f: Fields) -> FaultAbort | None:
    """The ``abort`` mapping: ``httpStatus`` or ``grpcStatus``, optional ``headers``/``body``."""
    status = f.int("httpStatus")
    grpc = f.str("grpcStatus")
    headers: dict[str, str] = f.str_map("headers", scalars_as_text=True)
    body = f.str("body")
    no_own_percentage(f)
    f.done()
    ok = True
    for name, value in headers.items():
        if not _TOKEN.match(name):
            f.error("headers", f"header name {name!r} is not a valid HTTP token")
            ok = False
        elif _CONTROL.search(value):
            f.error("headers", f"header {name!r}: value contains control characters")
            ok = False
    if f.has("httpStatus") and f.has("grpcStatus"):
        f.error(None, "only one of httpStatus, grpcStatus may be set")
        return None
    if not f.has("httpStatus") and not f.has("grpcStatus"):
        f.error(None, "abort needs httpStatus or grpcStatus")
        return None
    if status is not None and not 200 <= status <= 599:
        f.error("httpStatus", f"HTTP status {status} is not in range 200-599")
        return None
    if grpc is not None and grpc not in GRPC_STATUS:
        hint = did_you_mean(grpc, GRPC_STATUS)
        f.error("grpcStatus", f"{grpc!r} is not a gRPC status name (e.g. UNAVAILABLE){hint}")
        return None
    if (status is None and grpc is None) or not ok:
        return None
    return FaultAbort(status, grpc, {k.lower(): v for k, v in headers.items()}, body)


def parse(spec: Fields) -> FaultAbort | None:
    return parse_abort(a) if (a := spec.obj("abort")) is not None else None


def fold(plan: PlanDraft, abort: FaultAbort, rng: random.Random) -> None:
    plan.abort = AbortResponse.of(abort)
    plan.upstream_body = False


def from_keyword(value: Any) -> dict[str, Any]:
    """An HTTP status → ``{httpStatus}``, a gRPC status name → ``{grpcStatus}``, a dict as is."""
    if isinstance(value, bool):
        raise TypeError(
            f"abort must be an HTTP status, a gRPC status name or a dict, not {value!r}"
        )
    if isinstance(value, int):
        return {"httpStatus": value}
    if isinstance(value, str):
        return {"grpcStatus": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"abort must be an HTTP status, a gRPC status name or a dict, not {value!r}")


ACTION: Action[FaultAbort] = Action(
    name="abort",
    attr="abort",
    stage=Stage.TERMINAL,
    parse=parse,
    fold=fold,
    doc=(
        "`{httpStatus: 200–599}` or `{grpcStatus: NAME}`, plus optional `headers` (map; values "
        "may be numbers) and `body` (string; default empty)."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples(tuple(bounds.statuses), lambda s: {"httpStatus": s}),
    mildness=20,
)
