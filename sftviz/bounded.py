"""Bounded work: run a function in a child process with a time and memory budget.

Anything a visitor controls (a mapping template, a Hub tokenizer's chat template, an uploaded file, a Hub
dataset) is computed this way. A Jinja sandbox stops a template from touching the server, but not from
looping for hours or building a gigabyte string; only a process can be stopped for sure. The child is a
fork of the server, so it starts at once and already holds the rows and the tokenizer; only the result
travels back (pickled). Past its budget the child is killed: the CPU and memory are back at once, and
the caller gets a BudgetExceeded with a message that says which budget ran out.

Without os.fork (Windows) the function runs in-process, unbounded.
"""

import os
import pickle
import resource
import select
import signal
import stat
import time

SECONDS = float(os.environ.get("SFTVIZ_WORK_SECONDS", 10))  # per load or labelling of one dataset
MEMORY_MB = int(os.environ.get("SFTVIZ_WORK_MEMORY_MB", 2048))  # on top of what the server already uses


class BudgetExceeded(ValueError):
    """The work went over its time or memory budget and was stopped."""


class _Failure:
    """An exception raised in the child, carried back as its type and message (always picklable)."""

    def __init__(self, error):
        self.type, self.args = type(error), error.args
        try:
            pickle.dumps(self.args)
        except Exception:
            self.args = (str(error),)

    def raise_again(self):
        error = self.type.__new__(self.type)  # no __init__ of the subclass: it may take other arguments
        error.args = self.args
        raise error


def run(fn, *args, seconds=None, memory_mb=None, what="this request"):
    """fn(*args), computed in a child process within `seconds` and `memory_mb` (default SECONDS, MEMORY_MB);
    returns (result, bytes), bytes the size of the pickled result (a fair estimate of what caching it costs)."""
    seconds = SECONDS if seconds is None else seconds
    memory_mb = MEMORY_MB if memory_mb is None else memory_mb
    if not hasattr(os, "fork"):
        result = fn(*args)
        return result, len(pickle.dumps(result))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, and leave without running the server's exit handlers
        os.close(read_end)
        status = 0
        try:
            close_sockets()
            _limit_memory(memory_mb)
            payload = outcome(lambda: fn(*args))
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data = _read_until(read_end, time.monotonic() + seconds)
    finally:
        os.close(read_end)
        if data is None:
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    if data is None:
        raise BudgetExceeded(f"{what} took longer than {seconds:g} s and was stopped")
    if not data:  # the child died without a word: killed for memory, or crashed
        raise BudgetExceeded(f"{what} used more than {memory_mb} MB of memory and was stopped")
    kind, value = pickle.loads(data)
    if kind == "memory":
        raise BudgetExceeded(f"{what} used more than {memory_mb} MB of memory and was stopped")
    if kind == "error":
        value.raise_again()
    return value, len(data)


def outcome(call):
    """In a child: call()'s outcome, pickled for the parent: ("ok", result), ("memory", None) or ("error",
    _Failure), so every failure goes back as a message."""
    try:
        return pickle.dumps(("ok", call()), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        return pickle.dumps(("memory", None))
    except BaseException as e:  # noqa: BLE001
        try:
            return pickle.dumps(("error", _Failure(e)))
        except Exception:  # an exception type defined where pickle cannot find it
            return pickle.dumps(("error", _Failure(ValueError(f"{type(e).__name__}: {e}"))))


def close_sockets():
    """In a forked child: close the sockets it inherited from the server (its listening socket and every
    visitor's connection). A child holding them would keep a connection the server has closed half open,
    and a browser reusing it would wait forever for an answer nobody reads."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")]
    except OSError:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        try:
            if fd != devnull and stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.dup2(devnull, fd)  # not close(): objects that close the fd later close /dev/null, quietly
        except OSError:
            pass
    os.close(devnull)


def _limit_memory(memory_mb):
    """Cap the child's data (its heap and every private writable mapping: what `'x' * 10**10` would take) at
    what it has now plus the budget. Not its address space: a library the child loads (torch's CUDA build maps
    gigabytes of code it never touches) must not count against what a visitor's work may use."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[5]) * resource.getpagesize()  # data + stack, in pages
    limit = current + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _read_until(fd, deadline):
    """Everything the child writes until it closes the pipe, or None if the deadline passes first."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
