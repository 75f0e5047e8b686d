"""Every file chaoskit writes goes through here, so none can be aimed at someone else's file.

Output paths often sit in shared places (``/tmp``, a CI workspace). A symbolic link planted
at such a path used to redirect the write: a request path once landed in a shell rc file
through a symlinked access log. Two shapes of write cover every output:

- :func:`open_log` — an append-only log (``--access-log``). Opened with ``O_NOFOLLOW``, so a
  link at the path is refused rather than followed; anything but a regular file with one
  link (a FIFO, a device, a hard link to another file) is refused too. A new log is created
  ``0600``; an existing one we own is made ``0600`` on the opened descriptor (no race
  between checking and changing).
- :func:`write_file` — a whole file (journal, JUnit, HTML report, pytest reports, an
  explored experiment). Written to a temporary file in the same folder (created ``0600``
  with ``O_EXCL``: it cannot already exist, nor be a link) and renamed over the
  destination. The rename replaces a link instead of writing through it, and readers see
  the old file or the new one, never half of one.

Refusals are :class:`UnsafeOutput`, an :class:`OSError`, so a caller that already reports
``OSError`` (a missing folder, a full disk) reports these the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

#: Owner-only: for files that name requests, callers and faults (logs, journals, JUnit).
PRIVATE = 0o600


class UnsafeOutput(OSError):
    """An output path chaoskit will not write to (a link, a FIFO, a device, a folder)."""


def describe(error: OSError) -> str:
    """One line for the user: ``PATH: what is wrong`` (no errno numbers, no traceback)."""
    if isinstance(error, UnsafeOutput):
        return str(error)
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _umask() -> int:
    """The process umask. Reading it means setting it: the value set meanwhile (0o077) only
    makes a file another thread creates in that instant more private, never less."""
    old = os.umask(0o077)
    os.umask(old)
    return old


def open_log(path: str | os.PathLike[str]) -> TextIO:
    """Open ``path`` for appending UTF-8 text lines, owner-only, never through a link.

    Characters the encoding cannot carry are written as backslash escapes, never dropped
    with the line."""
    name = os.fspath(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    try:
        # O_NONBLOCK: opening a FIFO must fail or return, not wait for a reader.
        fd = os.open(name, flags | os.O_NONBLOCK, PRIVATE)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EMLINK and os.path.islink(name)):
            raise UnsafeOutput(
                f"{name}: is a symbolic link; chaoskit does not write through links "
                "(remove it, or name the file it points to)"
            ) from None
        if e.errno == errno.ENXIO:  # a FIFO nobody reads
            raise UnsafeOutput(f"{name}: is a FIFO, not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeOutput(
                f"{name}: is {_kind(st.st_mode)}, not a regular file (use '-' for standard output)"
            )
        if st.st_nlink != 1:
            raise UnsafeOutput(
                f"{name}: has {st.st_nlink} hard links; chaoskit writes only to a file with one"
            )
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != PRIVATE:
            os.fchmod(fd, PRIVATE)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
    except BaseException:
        os.close(fd)
        raise


def check_destination(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work is done, a destination :func:`write_file` would not replace:
    a folder, a FIFO, a device or a socket. A link is fine (it is replaced, not followed)."""
    name = os.fspath(path)
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise UnsafeOutput(f"{name}: is {_kind(st.st_mode)}, not a regular file")


def write_file(path: str | os.PathLike[str], data: str | bytes, *, private: bool) -> Path:
    """Replace ``path`` with ``data`` atomically (UTF-8 for text), never through a link.

    ``private``: mode ``0600``; otherwise the mode a new file gets under the umask (an HTML
    report or an explored experiment is meant to be shared). The folder must exist."""
    target = Path(path)
    check_destination(target)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if not private:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def make_private(path: str | os.PathLike[str]) -> bool:
    """Make an existing regular file we own ``0600``, never through a link; ``False`` when
    there was nothing of ours to change (missing, a link, not a regular file, another's)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return False
        if stat.S_IMODE(st.st_mode) != PRIVATE:
            os.fchmod(fd, PRIVATE)
        return True
    finally:
        os.close(fd)
