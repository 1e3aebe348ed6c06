"""The Hugging Face Hub: what a Hub id looks like, and failing fast when the Hub cannot be reached.

On a hosted page a Hub id is the only way to name something that is not bundled or uploaded. An id that
is not shaped like one (a path: "/etc", "~/x", "a/../b") is refused, and an id that happens to name
something on the server's disk gets exactly the answer a missing Hub repository gets, so a visitor cannot
map the server's files by trying names.
"""

import os
import re
import socket
import time

from . import quoted

_last = {"t": 0.0, "ok": True}
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
CONFIG = re.compile(r"^[A-Za-z0-9._%+:\[\]-]{1,100}$")  # a dataset config or split, e.g. "main", "train[:100]"


def offline():
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def reachable(timeout=3.0):
    """True if huggingface.co accepts a TCP connection (remembered for 60 s)."""
    if offline():
        return False
    if time.monotonic() - _last["t"] > 60:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
            _last["ok"] = True
        except OSError:
            _last["ok"] = False
        _last["t"] = time.monotonic()
    return _last["ok"]


def unavailable(what, name):
    """The one message for every Hub failure (and for anything that is not a Hub repository)."""
    why = "the Hugging Face Hub is not reachable (offline)" if not reachable() else \
        "no such repository, or it cannot be read"
    return f"cannot load {what} {quoted(name)} from the Hub: {why}"


def check_id(name, what, error=ValueError):
    """Refuse anything that is not shaped like a Hub id, or that names a file or folder here."""
    if not ID.match(name) or ".." in name or "--" in name:
        raise error(f"{quoted(name)} is not a Hub {what} id (owner/name)")
    if os.path.lexists(name):  # relative to the server's folder: answer as for a missing repository
        raise error(unavailable(what, name))


def check_config(value, what):
    if value is not None and not CONFIG.match(value):
        raise ValueError(f"{quoted(value)} is not a dataset {what}")
