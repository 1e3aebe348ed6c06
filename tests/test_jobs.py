"""sftviz.jobs: background work in child processes, shared by everyone who asks for the same key."""

import os
import time

import pytest

from conftest import as_visitor
from sftviz import bounded, jobs
from sftviz.bounded import BudgetExceeded


def counting(n, pause, emit):
    for k in range(n):
        emit({"k": k, "pid": os.getpid()})
        time.sleep(pause)
    return "done", n


def failing(emit):
    emit({"k": 0})
    raise ValueError("bad settings: steps must be positive")


def dying(emit):
    emit({"k": 0})
    os._exit(3)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def collect(watch):
    return [u for batch in watch.follow(0.05) for u in batch]


def test_same_key_is_computed_once_and_joiners_see_every_update():
    pool = jobs.Pool(2)
    first = pool.watch("a", counting, 8, 0.05, seconds=30)
    time.sleep(0.2)  # running: the second visitor joins midway
    second = pool.watch("a", counting, 8, 0.05, seconds=30)
    assert second.shared == 1 and first.shared == 1
    a, b = collect(first), collect(second)
    assert a == b and [u["k"] for u in a] == list(range(8))
    assert first.result == second.result == ("done", 8)
    assert pool.computed == 1
    first.close(), second.close()
    again = pool.watch("a", counting, 8, 0.05, seconds=30)  # finished: kept, replayed at once
    assert collect(again) == a and pool.computed == 1
    other = pool.watch("b", counting, 2, 0.0, seconds=30)  # another key: another computation
    collect(other)
    assert pool.computed == 2
    assert a[0]["pid"] != os.getpid()  # in a child process


def test_the_last_watcher_leaving_stops_the_child():
    pool = jobs.Pool(1)
    one, two = pool.watch("k", counting, 1000, 0.01, seconds=60), pool.watch("k", counting, 1000, 0.01, seconds=60)
    updates = one.follow(0.05)
    while not any(next(updates)):
        pass
    pid = one.job.pid
    assert alive(pid)
    one.close()
    time.sleep(0.3)
    assert alive(pid), "another visitor still watches"
    two.close()
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    deadline = time.time() + 5
    while pool.busy() != (0, 0) and time.time() < deadline:
        time.sleep(0.05)
    assert pool.busy() == (0, 0) and one.job.state == "stopped"


def test_a_full_pool_queues_with_a_position_and_a_waiting_job_nobody_wants_is_dropped():
    pool = jobs.Pool(1)
    running = pool.watch("r", counting, 1000, 0.01, seconds=60)
    queued = pool.watch("q", counting, 3, 0.0, seconds=60)
    gone = pool.watch("g", counting, 3, 0.0, seconds=60)
    assert (queued.position, gone.position) == (1, 2) and running.position == 0
    gone.close()
    assert queued.position == 1 and pool.busy() == (1, 1)
    running.close()  # frees the worker: the queued job runs next
    assert [u["k"] for u in collect(queued)] == [0, 1, 2]
    assert pool.computed == 2  # "g" never ran


def test_errors_budgets_and_crashes_reach_every_watcher_and_the_next_job_runs():
    pool = jobs.Pool(1)
    with pytest.raises(ValueError, match="steps must be positive"):
        collect(pool.watch("e", failing, seconds=30))
    with pytest.raises(BudgetExceeded, match="took longer than 0.5 s"):
        collect(pool.watch("slow", counting, 1000, 0.01, seconds=0.5, what="the slow job"))
    with pytest.raises(BudgetExceeded, match="stopped unexpectedly"):
        collect(pool.watch("d", dying, seconds=30))
    fine = pool.watch("e", counting, 2, 0.0, seconds=30)  # a failed key is computed again, not replayed
    assert [u["k"] for u in collect(fine)] == [0, 1]


def crashing_once(marker, emit):
    """Emits 0, 1, 2, 3; the first time it aborts after 0 and 1, as glibc does on a heap it finds corrupted."""
    for k in range(4):
        emit({"k": k, "loss": 1.0 / (k + 1)})
        if k == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            os.abort()
    return "done"


def counted(marker):
    with open(marker, "a") as f:
        f.write(".")


def always_crashing(marker, emit):
    counted(marker)
    emit({"k": 0})
    os.abort()


def killed(marker, emit):
    counted(marker)
    emit({"k": 0})
    os.kill(os.getpid(), 9)


def going_another_way(marker, emit):  # the first child emits 0, 1 and crashes; the second 0, 5 (or 0 and ends)
    counted(marker)
    again = os.path.getsize(marker) > 1
    emit({"k": 0})
    if again and "sooner" in marker:
        return "done"
    emit({"k": 5 if again else 1})
    if not again:
        os.abort()
    return "done"


def test_a_child_that_crashes_is_run_once_more_and_its_watchers_see_each_update_once(tmp_path, capfd):
    pool = jobs.Pool(1)
    watch = pool.watch("c", crashing_once, str(tmp_path / "crashed"), seconds=30, what="the training")
    assert [u["k"] for u in collect(watch)] == [0, 1, 2, 3] and watch.result == "done"
    err = capfd.readouterr().err
    assert "the training: its process crashed (SIGABRT); running it once more" in err
    assert "Fatal Python error: Aborted" in err and "crashing_once" in err  # the child's stack, in the log
    crashes = tmp_path / "always"
    with pytest.raises(BudgetExceeded, match=r"stopped unexpectedly \(its process crashed: SIGABRT\); try again"):
        collect(pool.watch("c2", always_crashing, str(crashes), seconds=30))
    assert crashes.read_text() == ".."  # twice, not a third time
    kills = tmp_path / "killed"
    with pytest.raises(BudgetExceeded, match="used more than"):  # killed (for memory, by the kernel): not again
        collect(pool.watch("k", killed, str(kills), seconds=30))
    assert kills.read_text() == "."
    other = tmp_path / "other"  # a rerun whose updates are not the ones the watchers have: the crash, no mix
    watch = pool.watch("o", going_another_way, str(other), seconds=30)
    with pytest.raises(BudgetExceeded, match="crashed: SIGABRT, and its rerun went another way"):
        collect(watch)
    assert other.read_text() == ".." and [u["k"] for u in watch.job.updates] == [0, 1]
    sooner = tmp_path / "sooner"
    with pytest.raises(BudgetExceeded, match="crashed: SIGABRT, and its rerun went another way"):
        collect(pool.watch("s", going_another_way, str(sooner), seconds=30))
    with pytest.raises(BudgetExceeded, match=r"stopped unexpectedly \(its process crashed: SIGABRT; perhaps out"):
        bounded.run(os.abort)  # a load or a labelling says so too (not only "over its memory")


def torch_on(threads):
    import torch
    torch.set_num_threads(threads)
    a = torch.randn(1200, 1200)
    (a @ a).sum()
    return torch.get_num_threads()


def test_work_on_several_threads_is_forked_from_a_new_thread_and_does_not_hang():
    """A thread that has run torch on several threads (GNU OpenMP's pool) hands a forked child threads that do not
    exist: the child's first parallel region would wait for ever. bounded.run(threads=2) forks from a new thread."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch_on(2)  # this thread's OpenMP pool has run
        assert bounded.run(torch_on, 2, seconds=20, threads=2)[0] == 2
        assert bounded.run(torch_on, 1, seconds=20)[0] == 1  # one thread: no pool, forked from this thread as before
    finally:
        torch.set_num_threads(before)


def holds_socket(fd, emit=None):
    import stat
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def test_children_do_not_keep_the_servers_sockets():
    """A child holding the server's connections would keep ones the server closed half open: a browser
    reusing such a connection waited forever (the Stop button, seen in the browser tests)."""
    import socket

    from sftviz import bounded
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        watch = jobs.Pool(1).watch("socket", holds_socket, s.fileno(), seconds=30)
        collect(watch)
        assert watch.result is False and holds_socket(s.fileno())
        assert bounded.run(holds_socket, s.fileno())[0] is False


def test_workers_count_the_cpus_this_process_may_use_not_the_hosts(tmp_path, monkeypatch):
    """A Space's container gets 2 vCPUs of a host with dozens of cores: the affinity mask and the cgroup quota
    decide how many workers run, not os.cpu_count()."""
    monkeypatch.setattr(os, "cpu_count", lambda: 96)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert jobs.usable_cpus(str(tmp_path / "none")) == 8  # no cgroup files: the affinity mask
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cpu.max").write_text("200000 100000\n")  # cgroup v2: 2 CPUs
    assert jobs.usable_cpus(str(tmp_path / "v2")) == 2
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")  # no quota
    assert jobs.usable_cpus(str(tmp_path / "v2")) == 8
    (tmp_path / "v2" / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one worker
    assert jobs.usable_cpus(str(tmp_path / "v2")) == 1
    (tmp_path / "v1" / "cpu").mkdir(parents=True)  # cgroup v1
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert jobs.usable_cpus(str(tmp_path / "v1")) == 3
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert jobs.usable_cpus(str(tmp_path / "v1")) == 8
    monkeypatch.setattr(jobs, "CGROUP", str(tmp_path / "v2"))
    (tmp_path / "v2" / "cpu.max").write_text("200000 100000\n")
    assert jobs.Pool().workers == 2


def test_watchers_joining_and_leaving_from_many_threads_leave_the_pool_consistent():
    """Job state lives under the pool's one lock: 8 threads join, read and leave 4 keys at random moments
    (some while the job starts, some while it stops); every watch ends, and the pool ends idle."""
    import random
    import threading

    pool, errors = jobs.Pool(2), []

    def visitor(seed):
        rnd = random.Random(seed)
        try:
            for _ in range(6):
                w = pool.watch(f"k{rnd.randrange(4)}", counting, 40, 0.01, seconds=30)
                for _ in w.follow(0.02):
                    w.place(), w.sharing()
                    if rnd.random() < 0.3:
                        break
                w.close()
        except Exception as e:  # noqa: BLE001 - e.g. "was stopped" raised to a watcher still watching
            errors.append(e)

    threads = [threading.Thread(target=visitor, args=(s,)) for s in range(8)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not any(t.is_alive() for t in threads) and not errors
    deadline = time.time() + 10
    while pool.busy() != (0, 0) and time.time() < deadline:
        time.sleep(0.05)
    assert pool.busy() == (0, 0) and not pool.live
    assert all(job.state == "done" for job in pool.kept.values())


def test_one_visitors_jobs_hold_one_worker_and_anothers_job_starts_on_the_next():
    from sftviz import bounded
    pool = jobs.Pool(2)
    token = bounded.OWNER.set("greedy")
    try:
        long1 = pool.watch("long1", counting, 1000, 0.01, seconds=60)
        long2 = pool.watch("long2", counting, 1000, 0.01, seconds=60)
    finally:
        bounded.OWNER.reset(token)
    assert pool.busy() == (1, 1) and long2.place() == "after your other job: one at a time per visitor"
    token = bounded.OWNER.set("student")
    try:
        quick = pool.watch("quick", counting, 3, 0.0, seconds=60)
    finally:
        bounded.OWNER.reset(token)
    assert [u["k"] for u in collect(quick)] == [0, 1, 2]  # started on the second worker at once
    assert long2.job.state == "waiting"
    long1.close()  # the greedy visitor's first job ends: their second starts
    deadline = time.time() + 5
    while long2.job.state == "waiting" and time.time() < deadline:
        time.sleep(0.05)
    assert long2.job.state == "running"
    long2.close()
    deadline = time.time() + 5
    while pool.busy() != (0, 0) and time.time() < deadline:
        time.sleep(0.05)
    # without a visitor (the CLI, the tests), jobs use every worker
    a, b = pool.watch("a", counting, 1000, 0.01, seconds=60), pool.watch("b", counting, 1000, 0.01, seconds=60)
    assert pool.busy() == (2, 0)
    a.close(), b.close()


def niceness(emit):
    return os.nice(0)


def test_jobs_run_below_the_server_and_a_flooders_work_goes_below_everyone_elses():
    """Jobs at nice 10; a visitor refused for flooding (Pool.demote) has their running job reniced to 19, and their
    next job and bounded work start at 19, while another visitor's stay where they were."""
    from sftviz import bounded

    base = os.nice(0)  # the server's (this process's) own niceness: a child's os.nice adds to it
    pool = jobs.Pool(2)
    flood = as_visitor("script", pool.watch, "long", counting, 1000, 0.01, seconds=60)
    student = as_visitor("student", pool.watch, "other", counting, 1000, 0.01, seconds=60)
    deadline = time.time() + 5
    while None in (flood.job.pid, student.job.pid) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # (the child sets its own niceness as it starts)
    assert os.getpriority(os.PRIO_PROCESS, flood.job.pid) == min(19, base + jobs.NICE) and jobs.NICE == 10
    pool.demote("script")
    assert os.getpriority(os.PRIO_PROCESS, flood.job.pid) == 19
    assert os.getpriority(os.PRIO_PROCESS, student.job.pid) == min(19, base + 10)
    flood.close(), student.close()
    after = as_visitor("script", pool.watch, "nice", niceness, seconds=60)
    collect(after)
    assert after.result == 19
    assert as_visitor("script", bounded.run, niceness, None)[0] == 19
    assert as_visitor("someone else", bounded.run, niceness, None)[0] == base


def niceness_of_threads(emit):
    import threading
    ready, done = threading.Event(), threading.Event()
    tids = []

    def worker():
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(30)

    threading.Thread(target=worker, daemon=True).start()
    ready.wait(5)
    emit({"tids": [threading.get_native_id(), *tids]})
    time.sleep(1.5)  # demoted meanwhile
    nice = [os.getpriority(os.PRIO_PROCESS, t) for t in [threading.get_native_id(), *tids]]
    done.set()
    return nice


def test_a_demoted_visitors_job_is_reniced_in_every_thread_unless_others_watch_it():
    pool = jobs.Pool(2)
    alone = as_visitor("script2", pool.watch, "alone", niceness_of_threads, seconds=30)
    shared = as_visitor("script3", pool.watch, "shared", counting, 1000, 0.01, seconds=30)
    joined = as_visitor("a student", pool.watch, "shared", counting, 1000, 0.01, seconds=30)
    next(alone.follow(0.05))  # its worker thread is running
    deadline = time.time() + 5
    while shared.job.pid is None and time.time() < deadline:
        time.sleep(0.02)
    pool.demote("script2"), pool.demote("script3")
    collect(alone)
    assert alone.result == [19, 19]  # the main thread and torch's (here: another) thread
    assert os.getpriority(os.PRIO_PROCESS, shared.job.pid) == min(19, os.nice(0) + jobs.NICE)  # a student watches it
    shared.close(), joined.close()


def test_a_shared_job_counts_against_a_visitor_still_watching_it():
    pool = jobs.Pool(2)

    a = as_visitor("a", pool.watch, "shared", counting, 1000, 0.01, seconds=60)
    b = as_visitor("b", pool.watch, "shared", counting, 1000, 0.01, seconds=60)
    a.close()  # a leaves; b still watches: the job is b's now, and a's next job starts at once
    assert a.job.owner == "b" and a.job.state == "running"
    a2 = as_visitor("a", pool.watch, "a2", counting, 1000, 0.01, seconds=60)
    assert a2.job.state == "running" and pool.busy() == (2, 0)
    b2 = as_visitor("b", pool.watch, "b2", counting, 3, 0.0, seconds=60)
    assert b2.place() == "after your other job: one at a time per visitor"
    for w in (b, a2, b2):
        w.close()


def test_a_child_does_not_keep_another_childs_pipe_open():
    """A child forked while another child's pipe is open in the server (by another thread, between that pipe's
    creation and the server closing its write end) must not keep that pipe open: the other child's reader would
    never see its end, and wait for its whole budget."""
    import select

    from sftviz import bounded
    read_end, write_end = os.pipe()
    sibling = bounded.Child(lambda emit: time.sleep(30))
    try:
        os.close(write_end)  # the server's copy: now only a child could hold it
        assert select.select([read_end], [], [], 5)[0] and os.read(read_end, 1) == b""  # EOF: nobody holds it
    finally:
        sibling.close()
        os.close(read_end)
