"""Bounded work: run a function in a child process with a time and memory budget.

Anything a visitor controls (a mapping template, a Hub tokenizer's chat template, an uploaded file, a Hub
dataset) is computed this way. A Jinja sandbox stops a template from touching the server, but not from
looping for hours or building a gigabyte string; only a process can be stopped for sure. The child is a
fork of the server, so it starts at once and already holds the rows and the tokenizer; only the result
travels back (pickled). Past its budget the child is killed: the CPU and memory are back at once, and
the caller gets a BudgetExceeded with a message that says which budget ran out.

Without os.fork (Windows) the function runs in-process, unbounded.
"""

import contextvars
import faulthandler
import os
import pickle
import resource
import select
import signal
import stat
import struct
import threading
import time

SECONDS = float(os.environ.get("SFTVIZ_WORK_SECONDS", 10))  # per load or labelling of one dataset
MEMORY_MB = int(os.environ.get("SFTVIZ_WORK_MEMORY_MB", 2048))  # on top of what the server already uses
RESULT_MB = int(os.environ.get("SFTVIZ_RESULT_MB", 256))  # the most one frame (an update, a result) may carry back


class BudgetExceeded(ValueError):
    """The work went over its time or memory budget and was stopped."""


class Replaced(BudgetExceeded):
    """A newer request of the same visitor replaced this one, and its work was stopped."""


# Who the work is for: the page sets a visitor's session here for the length of their request. A visitor has one
# bounded child at a time: their newer request's child replaces (kills) the older one, so one visitor's stream
# of requests holds one core (two for the Real model tab's forward pass, only while no job holds them), not all of
# them. (The CLI and the tests set nothing: no replacing.)
OWNER = contextvars.ContextVar("sftviz_owner", default=None)
_owned, _owned_lock = {}, threading.Lock()  # owner -> their running Child
# Owners with a background job running (sftviz.jobs keeps this set): their bounded work runs below every job
# (jobs run at nice 10), so a visitor with a training running cannot also take a core from another's job.
BUSY_OWNERS = set()
BUSY_NICE = 19
# Owners refused for asking too fast (sftviz.page.admit: a script flooding the page), until the time kept here: all
# their work, their running job included (sftviz.jobs), goes down to BUSY_NICE, below every other visitor's job.
DEMOTE_S = 60
_demoted = {}  # owner -> time.monotonic() when it ends
# Held around every fork, and by the web process's own rare torch work (sftviz.model_loss reading a model into
# memory): a child is never a copy of a process caught halfway through that work (a lock some thread held, a
# thread pool, an import), which hangs the child or corrupts its heap.
FORK_LOCK = threading.Lock()


def demote(owner):
    """Put `owner`'s work at the lowest priority for DEMOTE_S: their bounded child now, whatever they start next."""
    with _owned_lock:
        now = time.monotonic()
        _demoted[owner] = now + DEMOTE_S
        if len(_demoted) > 10_000:
            for o in [o for o, until in _demoted.items() if until < now]:
                del _demoted[o]
        child = _owned.get(owner)
        if child is not None:  # (registered: not reaped yet, so its pid is still its own)
            renice(child.pid, BUSY_NICE)


def lowered(owner):
    """Whether `owner`'s bounded work runs at BUSY_NICE: they have a job running, or were demoted."""
    return owner in BUSY_OWNERS or demoted(owner)


def demoted(owner):
    until = _demoted.get(owner)
    return until is not None and until > time.monotonic()


def renice(pid, nice):
    """Lower a running child's priority to `nice`, every thread of it (on Linux a priority is a thread's: torch's
    threads would keep theirs); raising niceness needs no privilege."""
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except (ProcessLookupError, PermissionError):
            pass


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


def run(fn, *args, seconds=None, memory_mb=None, what="this request", threads=1):
    """fn(*args), computed in a child process within `seconds` and `memory_mb` (default SECONDS, MEMORY_MB);
    returns (result, bytes), bytes the size of the pickled result. As the visitor's (OWNER) work: it replaces
    their older bounded work, at low priority while they have a job running (BUSY_OWNERS) or are demoted.
    `threads` above 1 (fn runs torch on that many threads): the child is forked from a new thread (fresh_fork)."""
    seconds = SECONDS if seconds is None else seconds
    memory_mb = MEMORY_MB if memory_mb is None else memory_mb
    if not hasattr(os, "fork"):
        result = fn(*args)
        return result, len(pickle.dumps(result))
    owner = OWNER.get()
    low = lowered(owner)
    child = (fresh_fork if threads > 1 else Child)(lambda emit: fn(*args), memory_mb=memory_mb,
                                                   nice=BUSY_NICE if low else 0, threads=threads)
    if owner is not None:
        with _owned_lock:  # (killed under the lock: a child is unregistered before it is reaped, so never a reused pid)
            older, _owned[owner] = _owned.get(owner), child
            if older is not None:
                older.replaced = True
                older.kill()
            if not low and demoted(owner):  # demoted while it was forked
                renice(child.pid, BUSY_NICE)
    try:
        kind, value, size = next(frame for frame in child.frames(time.monotonic() + seconds) if frame[0] != "update")
    finally:
        if owner is not None:
            with _owned_lock:
                if _owned.get(owner) is child:
                    del _owned[owner]
        child.close()
    if child.replaced and kind != "ok":  # (a result that was complete is kept: others may be waiting for it)
        raise Replaced(f"{what} was replaced by a newer request from the same page")
    if kind == "budget":
        raise BudgetExceeded(f"{what} took longer than {seconds:g} s and was stopped")
    if kind == "died" and child.crashed:
        raise BudgetExceeded(f"{what} stopped unexpectedly (its process crashed: {child.crashed}; perhaps out of "
                             f"memory)")
    if kind in ("memory", "died"):  # died without a word: killed for memory (by the kernel)
        raise BudgetExceeded(f"{what} used more than {memory_mb} MB of memory and was stopped")
    if kind == "too_big":
        raise BudgetExceeded(f"{what} gave a result of more than {RESULT_MB} MB, more than this page keeps: "
                             f"try fewer or shorter rows")
    if kind == "error":
        value.raise_again()
    return value, size


def fresh_fork(*args, **kwargs):
    """Child(*args, **kwargs), forked from a thread made for it. A child is a copy of the thread that forks it, and
    of that thread only: one that has run torch on several threads (GNU OpenMP) hands its child a pool of threads
    that do not exist, and the child's first parallel region waits for them for ever (measured: a 2-thread matmul
    hangs in a child of such a thread, and takes 0.11 s in a child of a new one). The web server's threads are
    reused from request to request; sftviz.jobs forks each job from a new thread already."""
    out = []

    def fork():
        try:
            out.append(Child(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out.append(e)

    thread = threading.Thread(target=fork, name="sftviz-fork", daemon=True)
    thread.start()
    thread.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


_HEADER = struct.Struct("<Q")  # a frame's length, before the frame
CRASH_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}


class Emit:
    """In a child: emit(update) sends an update to the parent; `threads` is how many threads the work may use
    (a job's share of the cores when it started)."""

    def __init__(self, send, threads):
        self.send, self.threads = send, threads

    def __call__(self, update):
        self.send(pickle.dumps(("update", update), protocol=pickle.HIGHEST_PROTOCOL))


class Child:
    """fn(*args, emit) in a forked child: the one way sftviz runs a visitor's work in another process (run() here
    for a load or a labelling, sftviz.jobs for trainings and full doctor passes). The child closes the server's
    sockets, runs at `nice`, has `memory_mb` of data on top of what it inherits, and sends framed pickles over
    a pipe: its updates, then its outcome. The parent reads them with frames() until a deadline, and close()
    reaps the child (killing it if it still runs)."""

    def __init__(self, fn, args=(), memory_mb=MEMORY_MB, nice=0, threads=1):
        read_end, write_end = os.pipe()
        with FORK_LOCK:  # (released in the child too: the with block ends in both)
            pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(fn, args, memory_mb, nice, threads, write_end)  # never returns
        os.close(write_end)
        self.pid, self.fd = pid, read_end
        self.replaced = False  # killed because the same visitor asked for something newer
        self.status = None  # os.waitpid's status, once close() has reaped it

    def frames(self, deadline):
        """(kind, value, bytes) as the child sends them: ("update", update, n) any number of times, then its
        outcome ("ok", result | "memory", None | "error", _Failure); or ("budget", None, 0) once `deadline`
        (time.monotonic()) passes (the child is killed), ("too_big", None, n) when a frame would be over
        RESULT_MB (it is never read: the child is killed), or ("died", None, 0) if it ends without an outcome."""
        buffer = bytearray()  # grows in place: a large result is not copied once per chunk
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                self.kill()
                yield "budget", None, 0
                return
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                yield "died", None, 0
                return
            buffer += chunk
            while len(buffer) >= _HEADER.size:
                (n,) = _HEADER.unpack_from(buffer)
                if n > RESULT_MB * 2**20:
                    self.kill()
                    yield "too_big", None, n
                    return
                if len(buffer) < _HEADER.size + n:
                    break
                kind, value = pickle.loads(memoryview(buffer)[_HEADER.size:_HEADER.size + n])
                del buffer[:_HEADER.size + n]
                yield kind, value, n
                if kind != "update":
                    return

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self):
        """Stop reading, kill the child if it still runs, and reap it."""
        os.close(self.fd)
        self.kill()
        try:
            self.status = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            pass

    @property
    def crashed(self):
        """The name of the signal that crashed the child (SIGABRT: glibc found its heap corrupted, or native code
        gave up, perhaps out of memory; SIGSEGV, SIGBUS, SIGILL, SIGFPE), or None: it ended on its own or was
        killed (SIGKILL by close(), a budget, a newer request or the kernel; SIGTERM from outside). Known only after
        close()."""
        if self.status is None or not os.WIFSIGNALED(self.status):
            return None
        sig = os.WTERMSIG(self.status)
        return signal.Signals(sig).name if sig in CRASH_SIGNALS else None


def _child(fn, args, memory_mb, nice, threads, write_end):
    """In the forked child: the work within its budget, every frame sent, then exit without the server's handlers."""
    status = 0
    try:
        close_inherited(keep=(write_end,))
        try:  # a crash (a C library's abort, a segfault) prints the child's Python stack to the server's log
            os.fstat(2)
            faulthandler.enable(2)
        except OSError:  # (no log: the server runs with stderr closed)
            pass
        if nice:
            os.nice(nice)
        _limit_memory(memory_mb)
        out = os.fdopen(write_end, "wb")

        def send(frame):
            out.write(_HEADER.pack(len(frame)) + frame)
            out.flush()

        send(outcome(lambda: fn(*args, Emit(send, threads))))  # the last frame: ("ok" | "memory" | "error", value)
        out.close()
    except BaseException:  # noqa: BLE001
        status = 1
    finally:
        os._exit(status)


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


def close_inherited(keep=()):
    """In a forked child: close the sockets it inherited from the server (its listening socket and every
    visitor's connection), and the pipes of other children (all but `keep`). A child holding a socket would keep
    a connection the server has closed half open, and a browser reusing it would wait forever for an answer
    nobody reads. A child holding another child's pipe (forked by another thread while that pipe was open)
    would keep it open after that child dies, and its reader would wait for an end that never comes."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")]
    except OSError:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        try:
            mode = os.fstat(fd).st_mode
            if fd != devnull and fd > 2 and fd not in keep and (stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode)):
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
