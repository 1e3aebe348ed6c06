"""A class presses Train together: identical runs are computed once and shared, training runs in worker
processes (page events keep answering), Stop and a closed tab end the worker's job."""

import os
import threading
import time

import pytest

from conftest import page_form
from sftviz import jobs, live, train, view
from sftviz.labels import Options


@pytest.fixture
def pool(monkeypatch):
    p = jobs.Pool(2)
    monkeypatch.setattr(jobs, "POOL", p)
    return p


def quick(**kw):
    return train.TrainConfig.preset("quick", **{"steps": 30, "eval_every": 10, "n_generate": 1, **kw})


def default_view():
    return view.open_view(view.ViewRequest("quiz_prompt_completion", options=Options("completion")))


def run_to_end(vw, config, out, k):
    out[k] = list(live.train_updates(vw, config, throttle=0.05))


def curves_of(updates):
    """The final figure's curves: {trace name: (x, y)}."""
    return {f"{fig.layout.title.text}: {t.name}": (tuple(t.x), tuple(t.y)) for fig in updates[-1].figures
            for t in fig.data}


def steps_computed(pool):
    """Training steps the pool's jobs computed, in all (every job, finished or not)."""
    seen = list(pool.kept.values()) + list(pool.live.values())
    return sum(1 for job in seen for u in job.updates if u.get("record") == "train")


def test_identical_runs_are_computed_once_and_a_different_seed_is_another_run(pool):
    vw, out = default_view(), {}
    threads = [threading.Thread(target=run_to_end, args=(vw, quick(), out, k)) for k in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # the later ones join a run that is already going
    for t in threads:
        t.join(300)
    assert pool.computed == 1 and steps_computed(pool) == 30 * 2  # one computation: 30 steps of 2 runs
    assert curves_of(out[0]) == curves_of(out[1]) == curves_of(out[2])
    assert any("shared with" in u[1] for k in (1, 2) for u in out[k][:-1])  # the page says the run is shared
    assert any("s left" in u[1] for u in out[0][:-1])  # and how long the run has to go
    assert out[0][-1][2] == out[2][-1][2]  # the same generations
    again = list(live.train_updates(vw, quick(), throttle=0.05))  # finished: kept, shown at once
    assert curves_of(again) == curves_of(out[0]) and pool.computed == 1
    other = list(live.train_updates(vw, quick(seed=1), throttle=0.05))
    assert pool.computed == 2 and curves_of(other) != curves_of(out[0])


def test_training_runs_in_a_worker_process_and_page_events_still_answer(hosted_app, pool):
    app = hosted_app
    request = app.refresh(page_form())["view-request"]
    updates = live.train_updates(view.open_view(request), quick(steps=20000), throttle=0.05)
    next(updates)
    try:
        job = next(iter(pool.live.values()))
        deadline = time.time() + 30
        while job.pid is None and time.time() < deadline:
            time.sleep(0.05)
        assert job.pid and job.pid != os.getpid()  # the training is another process
        for k in range(20):  # the page's own events answer meanwhile (from this process)
            out = app.navigate({"view-request": request, "example-index": k}, 1)
            assert out["example-index"] == k + 1 and "token-view" in out
        pid = job.pid
    finally:
        updates.close()  # Stop / a closed tab: the generator is closed
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and pool.busy() == (0, 0)


def test_a_third_distinct_run_waits_in_line_and_says_so(pool):
    vw = default_view()
    first = live.train_updates(vw, quick(steps=20000, seed=1), throttle=0.05)
    second = live.train_updates(vw, quick(steps=20000, seed=2), throttle=0.05)
    third = live.train_updates(vw, quick(steps=20000, seed=3), throttle=0.05)
    try:
        next(first), next(second)
        status = next(third)[1]
        assert "1st in line" in status and pool.busy() == (2, 1)
    finally:
        first.close()
        status = next(third)[1]
        deadline = time.time() + 20
        while "in line" in status and time.time() < deadline:
            status = next(third)[1]
        assert "Training…" in status  # the freed worker took the waiting run
        second.close(), third.close()


def test_a_worker_that_dies_is_reported_and_replaced(pool, monkeypatch):
    vw = default_view()

    def crash(*args):
        os._exit(9)

    monkeypatch.setattr(live, "_train_job", crash)
    with pytest.raises(ValueError, match="stopped unexpectedly"):
        list(live.train_updates(vw, quick(seed=5), throttle=0.05))
    monkeypatch.undo()
    done = list(live.train_updates(vw, quick(seed=5, steps=5), throttle=0.05))
    assert done[-1][2]  # the next job got a fresh worker and finished


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_time_left_comes_from_the_pace_since_the_first_step():
    now = time.perf_counter()
    assert live._time_left({"whole": 3, "completion": 3}, 240, (now, 1)) == ""  # no pace yet
    assert live._time_left({"whole": 240, "completion": 240}, 240, (now - 5, 1)) == ""  # done
    left = live._time_left({"whole": 60, "completion": 50}, 240, (now - 10, 10))  # 40 steps in 10 s
    assert left == " · about 48 s left"  # the slower run: 190 steps at 4 per second
    assert live._time_left({"whole": 20}, 20_000, (now - 10, 10)) == " · about 333 min left"  # 10 steps in 10 s, 19,980 to go
