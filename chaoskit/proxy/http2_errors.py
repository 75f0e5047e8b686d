"""How HTTP/2 failures are named: Envoy's reset reasons, and the h2 error codes in details.

Every failure of the HTTP/2 client (:mod:`chaoskit.proxy.http2_connection`,
:mod:`chaoskit.proxy.http2_stream`) is an :class:`~chaoskit.proxy.upstream.UpstreamFailure`
whose ``kind`` is one of Envoy's reset reasons (``resetReasonToString`` in Envoy's
``source/common/http/utility.cc``), so retry policy and the access log read them as they read
HTTP/1.1 ones; ``router.cc`` (``streamResetReasonToResponseFlag``) gives each its flag: ``UR``
for the remote resets, ``UC`` for a connection that ended, ``UPE`` for a protocol error.
"""

from __future__ import annotations

import h2.errors
import h2.exceptions
import hpack.exceptions
import hyperframe.exceptions

#: Envoy's reset reasons used as :attr:`~chaoskit.proxy.upstream.UpstreamFailure.kind`.
REFUSED = "remote refused stream reset"
REMOTE_RESET = "remote reset"
TERMINATION = "connection termination"
PROTOCOL = "protocol error"
LOCAL_RESET = "local reset"

#: Errors h2 and the libraries under it raise for bytes that are not valid HTTP/2.
WIRE_ERRORS = (
    h2.exceptions.H2Error, hpack.exceptions.HPACKError, hyperframe.exceptions.HyperframeError,
)  # fmt: skip


def error_name(code: int | None) -> str:
    """``CANCEL (0x8)``: an HTTP/2 error code as RFC 9113 §7 names it."""
    if code is None:
        return "no error code"
    try:
        name = h2.errors.ErrorCodes(code).name
    except ValueError:
        name = "UNKNOWN"
    return f"{name} (0x{code:x})"
