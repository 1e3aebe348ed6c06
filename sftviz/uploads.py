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

MAX_MB = int(os.environ.get("SFTVIZ_MAX_UPLOAD_MB", 50))  # per upload; a session keeps one upload at a time
TOTAL_MB = int(os.environ.get("SFTVIZ_UPLOADS_TOTAL_MB", 2048))  # every session's uploads together
KEEP_S = float(os.environ.get("SFTVIZ_UPLOAD_KEEP_S", 2 * 3600))  # at most, even if the session never ends
ROOT = os.environ.get("SFTVIZ_UPLOAD_DIR") or os.path.join(tempfile.gettempdir(), f"sftviz-uploads-{os.getuid()}")


_lock = threading.Lock()  # one upload or sweep at a time: a sweep never sees an upload half moved in
FRESH_S = 60  # an upload folder younger than this is never swept (it may be being filled)


class UploadError(ValueError):
    """The upload is refused; the message says why, in one line."""


def session_dir(session):
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", session or ""):
        raise UploadError("this upload has no valid session")
    return os.path.join(ROOT, session)


def receive(path, session, keep=None):
    """Move an uploaded file into the session's private folder, in place of the session's earlier uploads
    (except `keep`: the one its page shows now, which stays until another view replaces it); returns the new
    path. A session holds at most two uploads. Refused when all uploads together would pass TOTAL_MB."""
    if not path or not os.path.isfile(path):
        raise UploadError("no file was received")
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in EXTENSIONS:
        os.remove(path)
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'}; use {', '.join(EXTENSIONS)}")
    size = os.path.getsize(path)
    if size > MAX_MB * 2**20:
        os.remove(path)
        raise UploadError(f"{name} is larger than {MAX_MB} MB (this page's upload limit)")
    folder = session_dir(session)
    with _lock:
        replaced = [p for p in previous(session) if p != keep]
        _sweep(time.time())
        if used_bytes() - sum(_size(p) for p in replaced) + size > TOTAL_MB * 2**20:
            os.remove(path)
            raise UploadError("the server's space for uploads is full just now: try again in a few minutes, or run "
                              "sftviz on your own machine")
        for old in replaced:  # the new upload takes the old ones' place
            shutil.rmtree(os.path.dirname(old), ignore_errors=True)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            target = os.path.join(tempfile.mkdtemp(dir=folder), name)  # a new folder each time: no collisions
            shutil.move(path, target)
            os.chmod(target, 0o600)
            os.utime(target)  # its upload time: what the sweep reads
        except OSError:
            raise UploadError(f"{name} could not be stored: try again") from None
    return target


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def previous(session):
    """The session's uploads kept now (at most two: the one its page shows, and the newest)."""
    folder = session_dir(session)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(d.path, f) for d in os.scandir(folder) if d.is_dir() for f in os.listdir(d.path)]


def used_bytes():
    """Bytes of every session's uploads."""
    total = 0
    for root, _, files in os.walk(ROOT):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


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
    """Delete every upload received more than KEEP_S ago (sessions that never said goodbye), by the time of
    the upload itself (a folder's time changes whenever anything inside it does), then empty session folders."""
    with _lock:
        _sweep(time.time() if now is None else now)


def _sweep(now):  # under _lock
    if not os.path.isdir(ROOT):
        return
    for session in os.scandir(ROOT):
        try:
            for upload in os.scandir(session.path):
                files = [os.path.join(upload.path, f) for f in os.listdir(upload.path)] if upload.is_dir() else []
                old = all(now - os.path.getmtime(f) > KEEP_S for f in files) if files else \
                    now - upload.stat().st_mtime > FRESH_S
                if old:
                    shutil.rmtree(upload.path, ignore_errors=True)
            if not os.listdir(session.path) and now - session.stat().st_mtime > FRESH_S:
                os.rmdir(session.path)
        except OSError:  # gone meanwhile (the session ended)
            pass


def start_sweeper(every_s=300):
    """A daemon thread that sweeps every `every_s` seconds."""
    def loop():
        while True:
            time.sleep(every_s)
            sweep()

    threading.Thread(target=loop, name="sftviz-upload-sweeper", daemon=True).start()
