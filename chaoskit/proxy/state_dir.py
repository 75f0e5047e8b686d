"""The state folder: where mitmproxy's CA lives, and why chaoskit is strict about it.

The folder holds the CA key, and a client that trusts the CA trusts every certificate the proxy
signs. So the folder must be this user's and writable only by them, and the CA files must be
owner-only from the moment they exist.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mitmproxy.certs import CertStore

from chaoskit import safefiles
from chaoskit.errors import ProxyError

#: The files mitmproxy writes in its confdir (``CertStore.create_store`` in mitmproxy/certs.py,
#: basename ``mitmproxy``): the only files in the state folder chaoskit changes.
CA_FILES = (
    "mitmproxy-ca.pem", "mitmproxy-ca.p12", "mitmproxy-ca-cert.pem", "mitmproxy-ca-cert.cer",
    "mitmproxy-ca-cert.p12", "mitmproxy-dhparam.pem",
)  # fmt: skip


def prepare_state_dir(path: Path) -> None:
    """Create a missing state folder ``0700``, or accept an existing one only if it is ours
    and no one else can write in it.

    The folder holds the CA key: someone who can plant files or links there (``/tmp``, mode
    ``1777``) could make mitmproxy load their CA or write through their link, and a folder
    owned by another user is theirs to manage. An accepted folder keeps its mode: it may be
    shared with other tools (``--state-dir ~/certs``), so chaoskit never chmods it."""
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise ProxyError(f"cannot create the state folder {path}: {e.strerror}") from None
    else:
        os.chmod(path, 0o700)  # ours, just made: the umask must not loosen (or tighten) it
        return
    uid = os.geteuid()
    try:
        link = os.lstat(path)
        st = os.stat(path)
    except OSError as e:
        raise ProxyError(f"cannot use the state folder {path}: {e.strerror}") from None
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
        raise ProxyError(
            f"refusing the state folder {path}: it is a symbolic link owned by another user "
            f"(uid {link.st_uid})"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise ProxyError(f"refusing the state folder {path}: it is not a folder")
    if st.st_uid != uid:
        raise ProxyError(
            f"refusing the state folder {path}: it is owned by uid {st.st_uid}, not by this "
            f"user (uid {uid}); give chaoskit a folder of its own (a missing one is created 0700)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ProxyError(
            f"refusing the state folder {path}: mode {stat.S_IMODE(st.st_mode):04o} lets other "
            "users plant files or links next to the CA key; give chaoskit a folder only you can "
            "write (a missing one is created 0700)"
        )


def restrict_state_dir(path: Path) -> None:
    """Make the CA files owner-only (mitmproxy writes its key ``0600`` but the certificates
    with the umask). Only those files, only regular files we own, never through a link: the
    user's own files in the folder are theirs."""
    for name in CA_FILES:
        safefiles.make_private(path / name)


#: mitmproxy's ``key_size`` default: the CA key chaoskit creates is the one mitmproxy would.
CA_KEY_SIZE = 2048


def create_ca(path: Path) -> None:
    """Create (or load) mitmproxy's CA in ``path`` before mitmproxy starts, and make its files
    owner-only at once. Left to mitmproxy, the files appear while its addons configure, on the
    proxy's own thread, possibly after :meth:`Proxy.start` has returned: there would be no
    moment at which chaoskit could know they exist to restrict them.

    A CA already there is loaded, so that a file mitmproxy cannot use is refused here with its
    reason; a new one is only written (mitmproxy loads it as it starts: loading the key twice
    cost about 36 ms of every pytest session's start-up)."""
    try:
        if (path / "mitmproxy-ca.pem").exists():
            CertStore.from_store(path, "mitmproxy", CA_KEY_SIZE)
        else:
            CertStore.create_store(path, "mitmproxy", CA_KEY_SIZE)
    except (OSError, ValueError) as e:  # unreadable, or not a CA mitmproxy can load
        raise ProxyError(f"cannot create or load the CA in {path}: {e}") from None
    restrict_state_dir(path)


def default_state_dir() -> Path:
    """Where the CA lives: ``$CHAOSKIT_HOME``, ``$XDG_STATE_HOME/chaoskit`` or ``~/.chaoskit``."""
    if home := os.environ.get("CHAOSKIT_HOME"):
        return Path(home)
    if xdg := os.environ.get("XDG_STATE_HOME"):
        return Path(xdg) / "chaoskit"
    return Path.home() / ".chaoskit"
