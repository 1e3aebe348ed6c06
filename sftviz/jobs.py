"""Shared background jobs: long work (a full doctor pass, a training run) in a child process, watched by
any number of visitors.

A job is known by its key: everything that decides its result. Asking for a job that is running joins
it (the updates so far, then the live ones); asking for one that finished gives its kept updates at
once; a new key waits for a free worker (at most `workers` children run at once, one per core) and can
say its place in line. When its last watcher leaves (Stop, a closed tab) the job is stopped: its child
is killed and the CPU is free at once. A child that overruns its time budget, its memory budget or dies
is reported to every watcher as a one-line error, and the next job gets a fresh child; one that crashes
(a signal of its own) is first forked once more, its watchers seeing only a pause.

The child is a fork of the server, so it starts at once with the data already in memory; it reports
with `emit(update)` (pickled over a pipe) and its return value is the job's result. It runs at a lower
priority than the web server (nice 10), so the page's own events stay fast while jobs run; the other work of
a visitor whose job runs goes lower still (nice 19), so nobody gets more than one core's share by also
flooding the page with loads; and a visitor refused for flooding (a script) has everything at nice 19 for a while,
their running job too unless others watch it (Pool.demote).
"""

import os
import signal
import sys
import threading
import time
from collections import OrderedDict

from .bounded import (BUSY_NICE, BUSY_OWNERS, MEMORY_MB, OWNER, RESULT_MB, BudgetExceeded, Child, demote, demoted,
                      renice)

NICE = 10  # the children run below the web server (its events first), and above a busy visitor's other work
# (bounded.BUSY_NICE): a visitor with a job running cannot take a second core from another visitor's job
PER_VISITOR = 1  # jobs one visitor (a page's session: bounded.OWNER) may have running at once
CGROUP = "/sys/fs/cgroup"


def usable_cpus(cgroup=None):
    """The CPUs this process may really use: its affinity mask, capped by the container's CPU quota (cgroup v2
    cpu.max, or v1 cfs_quota_us / cfs_period_us). On a shared host (a Space's 2 vCPUs on a machine of dozens of
    cores) os.cpu_count() counts the host's cores, and one worker per core would starve everyone."""
    cgroup = cgroup or CGROUP
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            with open(os.path.join(cgroup, quota_file)) as f:
                quota, *rest = f.read().split()
            if period_file:
                with open(os.path.join(cgroup, period_file)) as f:
                    rest = f.read().split()
            if quota not in ("max", "-1"):
                n = min(n, int(quota) // int(rest[0]))
            break
        except (OSError, ValueError, IndexError):
            continue
    return max(1, n)


class Job:
    """One computation, known by its key, and everything its watchers read. Every field below is read and
    written under the pool's one lock (`cond` is a Condition on that lock: watchers wait on it for updates).

    Its states, each changed only by the pool:
      waiting   in line for a free worker (a watcher sees its place); -> running, or stopped if every
                watcher leaves first;
      running   its child computes (`pid` set while the child lives); -> done | failed, or stopping;
      stopping  its last watcher left while it ran: the child is being killed, and a new ask for the same
                key starts a new job instead of joining this one; -> stopped;
      done      finished with a result: kept for whoever asks next (up to the pool's keep_mb);
      failed    finished with an error (over its time or memory budget, or fn raised): every watcher gets it;
      stopped   finished because nobody watched it any more."""

    def __init__(self, key, fn, args, seconds, memory_mb, what, lock):
        self.key, self.fn, self.args = key, fn, args
        self.seconds, self.memory_mb, self.what = seconds, memory_mb, what
        self.updates = []  # what the child emitted, in order
        self.result = None  # fn's return value, when done
        self.error = None  # the exception, when failed
        self.state = "waiting"  # waiting | running | stopping | done | failed | stopped (see above)
        self.watchers = 0
        self.size = 0  # bytes of pickled updates and result: what keeping the job costs
        self.pid = None
        self.threads = 1  # threads the job may use: the cores free when it started (the child's emit.threads)
        self.tags = set()  # what the job was computed from (e.g. an upload's path): forget() drops by tag
        self.owner = OWNER.get()  # the visitor it counts against (None: the CLI, a test): see Pool
        self.watching = []  # the visitor of each watch: when the owner stops watching, another watcher owns it
        self.cond = threading.Condition(lock)

    @property
    def finished(self):
        return self.state in ("done", "failed", "stopped")

    def finish(self, state, error=None, result=None):
        """Enter a final state and wake every watcher (the caller holds the pool's lock)."""
        self.state, self.error, self.result = state, error, result
        self.cond.notify_all()


class Watch:
    """One visitor watching one job. Iterate `follow()` for the updates; `close()` (or leaving a `with`)
    stops watching, and stops the job if nobody else watches it."""

    def __init__(self, pool, job, owner=None):
        self.pool, self.job, self.seen, self.closed = pool, job, 0, False
        self.owner = owner  # the visitor watching (bounded.OWNER when the watch began)

    @property
    def shared(self):
        """How many other visitors watch the same job."""
        return max(0, self.job.watchers - 1)

    @property
    def position(self):
        """Place in line (1 = next to start), 0 once the job runs or has finished."""
        return self.pool.position(self.job)

    def sharing(self):
        """'shared with N other visitor(s)' for the page, '' while nobody else watches."""
        n = self.shared
        return f"shared with {n} other visitor{'s' if n != 1 else ''}" if n else ""

    def place(self):
        """'2nd in line' for the page, '' once the job runs."""
        if self.pool.waits_for_own(self.job):
            return "after your other job: one at a time per visitor"
        n = self.position
        return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')} in line" if n \
            else ""

    def follow(self, timeout=0.25):
        """Yield lists of new updates (an empty list every `timeout` s while nothing happens, so the caller
        can say where it is in line) until the job ends, then raise its error if it failed; or until this
        watch is closed from elsewhere (then it just stops)."""
        job = self.job
        while not self.closed:  # closed from elsewhere (the page's Stop button): this watcher is done
            with job.cond:
                if len(job.updates) == self.seen and not job.finished:
                    job.cond.wait(timeout)
                new, finished = job.updates[self.seen:], job.finished
                self.seen += len(new)
            yield new
            if finished and self.seen == len(job.updates):
                break
        if self.closed:
            return
        if job.state == "failed":
            raise job.error
        if job.state == "stopped":
            raise BudgetExceeded(f"{job.what} was stopped")

    @property
    def result(self):
        return self.job.result

    def close(self):
        """Stop watching (safe to call twice, from any thread: the Stop button and the stream's own end)."""
        with self.pool.lock:
            if self.closed:
                return
            self.closed = True
        self.pool._leave(self.job, self.owner)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Pool:
    """At most `workers` jobs run at once; finished jobs are kept (up to `keep_mb`) for whoever asks next.

    Fair to every visitor: a visitor's jobs run at most PER_VISITOR at a time, and the next job to start is
    the first in line whose visitor is under that quota. So one visitor's long jobs (two 20,000-step trainings,
    two full doctor passes) hold one worker, never all of them, and another visitor's job starts on the next
    free one. (Not shortest-first: how long a job runs is not known before it runs, and a long job would wait
    for ever behind a class's short ones.)"""

    def __init__(self, workers=None, keep_mb=64):
        self.workers = workers or usable_cpus()
        self.keep_bytes = keep_mb * 2**20
        self.lock = threading.Lock()
        self.live = {}  # key -> waiting or running job
        self.kept = OrderedDict()  # key -> done job, least recently asked first
        self.line = []  # waiting jobs, first come first served (within each visitor's quota)
        self.active = set()  # running jobs
        self.computed = 0  # jobs started in all (the tests count them)

    def watch(self, key, fn, *args, seconds, memory_mb=None, what="this job", tag=None):
        """Watch the job `key`: join it if it runs or waits, replay it if it finished, else start
        fn(*args, emit) in a child when a worker is free. `seconds` is its time budget once running;
        `tag` names what it was computed from (see forget)."""
        with self.lock:
            job = self.kept.get(key)
            if job is not None:
                self.kept.move_to_end(key)
            else:
                job = self.live.get(key)
            if job is None or job.state == "stopping":  # a job being stopped is not joined: a new one starts
                job = self.live[key] = Job(key, fn, args, seconds, MEMORY_MB if memory_mb is None else memory_mb,
                                           what, self.lock)
                self.line.append(job)
            job.watchers += 1
            job.watching.append(OWNER.get())
            if tag is not None:
                job.tags.add(tag)
            self._start_waiting()
        return Watch(self, job, OWNER.get())

    def position(self, job):
        with self.lock:
            return self.line.index(job) + 1 if job in self.line else 0

    @property
    def running(self):
        return len(self.active)

    def waits_for_own(self, job):
        """Whether `job` waits because its visitor's quota is used by their other jobs."""
        with self.lock:
            return job in self.line and job.owner is not None and \
                sum(j.owner == job.owner for j in self.active) >= PER_VISITOR

    def threads_held(self):
        """Threads the running jobs' children use (each its job.threads)."""
        with self.lock:
            return sum(j.threads for j in self.active)

    def busy(self):
        """(running, waiting) jobs."""
        with self.lock:
            return self.running, len(self.line)

    def forget(self, drop):
        """Forget the kept jobs with a tag for which drop(tag) is true (computed from a closed session's upload)."""
        with self.lock:
            for key in [k for k, job in self.kept.items() if any(drop(t) for t in job.tags)]:
                del self.kept[key]

    def demote(self, owner):
        """A visitor refused for flooding (sftviz.page.admit): their work goes below everyone else's for
        bounded.DEMOTE_S, and so does a running job that only demoted visitors watch (for the rest of its life:
        a priority is never raised again). A job others watch too (a class's shared run) keeps its priority."""
        demote(owner)
        with self.lock:  # (pids are set and cleared under the lock: never a pid the system has given another)
            for job in self.active:
                if job.pid is not None and self._demoted_only(job):
                    renice(job.pid, BUSY_NICE)

    @staticmethod
    def _demoted_only(job):  # under self.lock
        watching = [o for o in job.watching if o is not None] or [job.owner]
        return job.owner is not None and all(demoted(o) for o in watching)

    def _mark_busy(self):  # under self.lock: bounded.BUSY_OWNERS = the owners of this pool's running jobs
        BUSY_OWNERS.clear()
        BUSY_OWNERS.update(j.owner for j in self.active if j.owner is not None)

    def _next(self):  # under self.lock: the first waiting job whose visitor is under the quota
        running = [j.owner for j in self.active if j.owner is not None]
        return next((j for j in self.line if j.owner is None or running.count(j.owner) < PER_VISITOR), None)

    def _start_waiting(self):  # under self.lock
        while self.running < self.workers:
            job = self._next()
            if job is None:
                return
            self.line.remove(job)
            job.state = "running"
            self.active.add(job)
            self._mark_busy()
            job.threads = max(1, usable_cpus() // self.running)  # the cores free when it starts
            self.computed += 1
            threading.Thread(target=self._run, args=(job,), name="sftviz-job", daemon=True).start()

    def _leave(self, job, owner=None):
        with self.lock:
            job.watchers -= 1
            if owner in job.watching:
                job.watching.remove(owner)
            if job.owner == owner and owner not in job.watching:  # it now counts against a visitor still watching
                job.owner = next((o for o in job.watching if o is not None), None)
                self._mark_busy()
                self._start_waiting()
            if job.watchers > 0 or job.finished:
                return
            if job in self.line:  # nobody waits for it any more
                self.line.remove(job)
                self.live.pop(job.key, None)
                job.finish("stopped")
            else:
                job.state = "stopping"
                if job.pid is not None:  # else it is being forked: _supervise kills it as soon as it can
                    os.kill(job.pid, signal.SIGKILL)  # the supervising thread reaps it and frees the worker

    def _run(self, job):
        try:
            final = self._supervise(job)
        except BaseException as e:  # noqa: BLE001 - a failure to start is reported like any other
            final = ("failed", e, None)
        finally:
            with self.lock:
                job.finish(*final)
                self.active.discard(job)
                self._mark_busy()
                if self.live.get(job.key) is job:
                    del self.live[job.key]
                if job.state == "done":
                    self.kept[job.key] = job
                    while len(self.kept) > 1 and sum(j.size for j in self.kept.values()) > self.keep_bytes:
                        self.kept.popitem(last=False)
                self._start_waiting()

    def _supervise(self, job):
        """Run the job's child to its end: (final state, error, result). A child that crashes (bounded.Child.crashed:
        glibc aborting on a heap it finds corrupted, a segfault) without an outcome is forked once more, within what
        is left of the job's time budget, and the rerun's first updates, the ones its watchers already have, are
        skipped: the work is deterministic (the same seed, data and threads), so they see a pause, not a restart.
        Should a skipped update not match the one they have (a training that stopped at its own clock budget
        elsewhere), the job fails with the crash. (A crash seen about once in a few hundred trainings forked from
        a busy test process, never explained; the child's Python stack goes to the log: bounded._child enables
        faulthandler.)"""
        deadline, first = time.monotonic() + job.seconds, None
        for again in (False, True):
            with self.lock:
                had = list(job.updates) if again else None
            kind, value, stopping, crashed = self._attempt(job, deadline, had)
            if crashed is DIFFERS:
                crashed = f"{first}, and its rerun went another way"
            if stopping or kind != "died" or not crashed or again:
                break
            first = crashed
            print(f"sftviz: {job.what}: its process crashed ({crashed}); running it once more", file=sys.stderr,
                  flush=True)
        if stopping:
            return "stopped", None, None
        if kind == "ok":
            return "done", None, value
        if kind == "error":
            try:
                value.raise_again()
            except BaseException as e:  # noqa: BLE001
                return "failed", e, None
        if kind == "budget":
            return "failed", BudgetExceeded(f"{job.what} took longer than {job.seconds:g} s and was stopped"), None
        if kind == "too_big":
            return "failed", BudgetExceeded(f"{job.what} sent more than {RESULT_MB} MB at once and was stopped"), None
        if crashed:  # twice: the next job gets a fresh child anyway
            return "failed", BudgetExceeded(f"{job.what} stopped unexpectedly (its process crashed: {crashed}); "
                                            f"try again, or with smaller settings"), None
        # killed for memory (by the kernel), or ended without a word
        return "failed", BudgetExceeded(f"{job.what} used more than {job.memory_mb} MB of memory or stopped "
                                        f"unexpectedly; try again or with smaller settings"), None

    def _attempt(self, job, deadline, had=None):
        """One child for the job, read until `deadline` (time.monotonic()): (kind, value, stopping, crashed) (see
        Child.frames and Child.crashed). `had`: the updates the watchers already have (a rerun): the child's first
        ones are checked against them and not sent again; one that differs ends the rerun as a crash."""
        with self.lock:
            low = self._demoted_only(job)
        child = Child(job.fn, job.args, job.memory_mb, nice=BUSY_NICE if low else NICE, threads=job.threads)
        with self.lock:
            job.pid = child.pid
            if not low and self._demoted_only(job):  # demoted while it was forked
                renice(child.pid, BUSY_NICE)
            if job.state == "stopping":  # the last watcher left while it was starting
                child.kill()
        kind, value, differs, skip = "died", None, None, len(had or ())
        try:
            for kind, value, n in child.frames(deadline):
                if skip:
                    if kind != "update" or not same_update(value, had[-skip]):  # another way, or it ended sooner
                        child.kill()
                        kind, value, differs = "died", None, DIFFERS
                        break
                    skip -= 1
                    continue
                with self.lock:
                    job.size += n
                    if kind == "update":
                        job.updates.append(value)
                        job.cond.notify_all()
                if kind != "update":
                    break
            else:
                kind, value = "died", None
        finally:
            with self.lock:  # no pid before it is reaped: _leave never kills a pid the system has given another
                job.pid = None
                stopping = job.state == "stopping"
            child.close()
        return kind, value, stopping, differs or child.crashed


DIFFERS = object()  # _attempt: a rerun's update was not the one its watchers have


def same_update(a, b):
    """Whether a rerun's update is the one watchers already have: equal but for the last bits of its floats (threads
    may add in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_update(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_update(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b)) or (a != a and b != b)
    return a == b


WORKERS = int(os.environ.get("SFTVIZ_WORKERS", 0)) or usable_cpus()
POOL = Pool(WORKERS)  # the server's one pool: full doctor passes and trainings share the cores
