"""Fail fast when the Hugging Face Hub cannot be reached, instead of ~50 s of silent retries."""

import os
import socket
import time

_last = {"t": 0.0, "ok": True}


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
