"""Visitors' uploads on a hosted page: each session's files in a folder of its own, size-limited, and
deleted when the session ends or after a time limit, whichever comes first.

Gradio saves an upload in its temp folder, a path any visitor could name. `receive()` moves it into the
session's private folder at once; the page then keeps that path in server-side session state, so no
other session (and no API call) can name it. Nothing goes into a shared persistent cache: sftviz reads
the file itself (sftviz.readers), and its caches are keyed by this private path and forgotten with it.
"""

import os
import re
import shutil
import tempfile
import threading
import time

from .readers import EXTENSIONS

MAX_MB = int(os.environ.get("SFTVIZ_MAX_UPLOAD_MB", 50))
KEEP_S = float(os.environ.get("SFTVIZ_UPLOAD_KEEP_S", 2 * 3600))  # at most, even if the session never ends
ROOT = os.environ.get("SFTVIZ_UPLOAD_DIR") or os.path.join(tempfile.gettempdir(), f"sftviz-uploads-{os.getuid()}")


class UploadError(ValueError):
    """The upload is refused; the message says why, in one line."""


def session_dir(session):
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", session or ""):
        raise UploadError("this upload has no valid session")
    return os.path.join(ROOT, session)


def receive(path, session):
    """Move an uploaded file into the session's private folder; returns the new path."""
    if not path or not os.path.isfile(path):
        raise UploadError("no file was received")
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in EXTENSIONS:
        os.remove(path)
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'}; use {', '.join(EXTENSIONS)}")
    if os.path.getsize(path) > MAX_MB * 2**20:
        os.remove(path)
        raise UploadError(f"{name} is larger than {MAX_MB} MB (this page's upload limit)")
    folder = session_dir(session)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(tempfile.mkdtemp(dir=folder), name)  # a new folder each time: names never collide
    shutil.move(path, target)
    os.chmod(target, 0o600)
    sweep()
    return target


def owned_by(path, session):
    """True if `path` is one of this session's uploads."""
    folder = session_dir(session) + os.sep
    return bool(path) and os.path.realpath(path).startswith(os.path.realpath(folder))


def discard(session):
    """Delete a session's uploads (the session ended); returns the folder that held them."""
    folder = session_dir(session)
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def sweep(now=None):
    """Delete every session folder older than KEEP_S (sessions that never said goodbye)."""
    now = time.time() if now is None else now
    if not os.path.isdir(ROOT):
        return
    for entry in os.scandir(ROOT):
        try:
            if now - entry.stat().st_mtime > KEEP_S:
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass


def start_sweeper(every_s=300):
    """A daemon thread that sweeps every `every_s` seconds."""
    def loop():
        while True:
            time.sleep(every_s)
            sweep()

    threading.Thread(target=loop, name="sftviz-upload-sweeper", daemon=True).start()
