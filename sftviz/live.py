"""Live training for the page: the paired runs as a shared background job (sftviz.jobs), and what to draw
while they train, on a time throttle (a browser re-renders a plot in ~60 ms; faster updates pile up).
No gradio here.

A run is fully determined by its inputs: the rows it trains on, the tokenizer, the settings (modes,
steps, learning rate, seed, model, ...), and the engine is deterministic. So the job's key is exactly
that: a second visitor asking for a run that is running joins it (the points so far, then the live
ones), one that finished is replayed at once, and the line of waiting runs counts distinct runs only.
"""

import dataclasses
import hashlib
import json
import os
import threading
import time
from typing import NamedTuple

from . import jobs, plots, render, train, verdict, zerogpu
from .tokenizer import token_texts

THROTTLE_S = 0.4  # seconds between two plot updates
BUDGET_S = float(os.environ.get("SFTVIZ_TRAIN_SECONDS", 300))  # a page's training stops after this, finished or not
MEMORY_MB = int(os.environ.get("SFTVIZ_TRAIN_MEMORY_MB", 4096))  # a training job's memory budget
STOPPED = ("⏹ Stopped: the curves show the steps the runs finished. (A run other visitors are watching goes on "
           "for them.)")
GRACE_S = 120  # past its budget a job gets this long for its generations before it is killed


class Update(NamedTuple):
    """What the page draws while the runs train: the two plots (held-out first: the fair one), the status line;
    with the last update, the verdict, the generations and the heatmap (HTML; else None)."""

    figures: tuple  # (held-out figure, training-loss figure)
    status: str
    generations: str | None = None
    heatmap: str | None = None
    verdict: str | None = None
    curves: dict | None = None  # mode -> {"train" | "answer" | "prompt": [(step, loss)]}, as drawn


def figures(curves, steps):
    return plots.held_out_figure(curves, steps), plots.train_figure(curves, steps)


def run_key(view, config):
    """What decides a run's result: the rows it reads, the tokenizer, the settings."""
    rows = view.loaded.rows[:config.max_examples]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    _, tokenizer, tokenizer_where = view.loaded.key  # ViewRequest.data_key: the rows' Source is in the digest
    return ("train", digest, tokenizer, tokenizer_where, tuple(sorted(dataclasses.asdict(config).items())))


def _train_job(rows, tok, config, budget_s, emit):  # in the job's child process: the CPU, or a machine's CUDA
    return _train_on_device(rows, tok, dataclasses.replace(config, threads=emit.threads), budget_s, emit)


def _train_on_device(rows, tok, config, budget_s, emit, device=None, started=None):
    """Train, sending every event; past budget_s the runs stop and the results so far are computed.
    `started(pt)` is told the PairedTraining (to stop it from elsewhere)."""
    with train.PairedTraining(rows, tok, config, device) as pt:
        if started:
            started(pt)
        emit({"record": "plan", "notes": pt.plan.notes, "names": pt.names})
        timer = threading.Timer(budget_s, pt.stop_event.set)
        timer.daemon = True
        timer.start()
        for event in pt.events_until_done():
            emit(event)
        timer.cancel()
        over = pt.stop_event.is_set()
        final = pt.results()
    final["over_budget"] = over
    return final


def watch_training(view, config, budget_s=None, pool=None):
    """A jobs.Watch of the paired training of this view's data with `config` (joined if it runs)."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    config = dataclasses.replace(config, threads=1)  # the job picks its threads itself: not part of the key
    return (pool or jobs.POOL).watch(run_key(view, config), _train_job, view.loaded.rows, view.loaded.tok, config,
                                     budget_s, seconds=budget_s + GRACE_S, memory_mb=MEMORY_MB,
                                     what="this training", tag=view.loaded.source)


# --- A pretrained model on a ZeroGPU Space: trained in the visitor's own GPU call (sftviz.zerogpu) --------

GPU_START_S = 15  # seconds to put a small pretrained model on the GPU, asked of ZeroGPU on top of the steps
GPU_STEP_S = float(os.environ.get("SFTVIZ_GPU_STEP_S", 0.08))  # GPU seconds one step of one run takes
GPU_MARGIN_S = 10  # the runs stop this long before the GPU call's end: the generations come after them


def gpu_seconds(view, config, *args, **kwargs):
    """The GPU time to ask ZeroGPU for (the visitor's quota pays it): the model's start, then every step of every
    run. The quick preset asks for under 60 s; no ask is longer than the page's training budget."""
    return int(min(BUDGET_S, GPU_START_S + config.steps * len(train.run_names(config)) * GPU_STEP_S))


@zerogpu.gpu(duration=gpu_seconds)
def train_updates_on_gpu(view, config, throttle=THROTTLE_S, register=None):
    """train_updates for a pretrained model on ZeroGPU: called in the web process from the visitor's event
    (spaces attaches the GPU to this call), the runs trained in this call rather than in a worker, and
    stopped GPU_MARGIN_S before the GPU time asked for ends."""
    budget_s = max(5, gpu_seconds(view, config) - GPU_MARGIN_S)
    yield from train_updates(view, config, throttle, budget_s, register=register,
                             run=LocalRun(view.loaded.rows, view.loaded.tok, config, budget_s))


class LocalRun:
    """A paired training in this process, in a thread, followed like a jobs.Watch (nobody shares it)."""

    def __init__(self, rows, tok, config, budget_s):
        import queue
        self.events, self.closed, self.pt, self.error, self.value = queue.Queue(), False, None, None, None
        self.thread = threading.Thread(target=self._run, args=(rows, tok, config, budget_s), daemon=True,
                                       name="sftviz-gpu-train")

    def _run(self, rows, tok, config, budget_s):
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.value = _train_on_device(rows, tok, config, budget_s, self.events.put, device, self._started)
        except BaseException as e:  # noqa: BLE001  (said by follow(), in the visitor's stream)
            self.error = e
        finally:
            self.events.put(None)

    def _started(self, pt):
        self.pt = pt
        if self.closed:
            pt.stop_event.set()

    def follow(self, timeout=0.25):
        while not self.closed:
            new = train.drain(self.events, timeout)
            done = None in new
            yield [e for e in new if e is not None]
            if done:
                break
        if self.error is not None and not self.closed:
            raise self.error

    @property
    def result(self):
        return self.value

    def place(self):
        return ""

    def sharing(self):
        return ""

    def close(self):
        self.closed = True
        if self.pt is not None:
            self.pt.stop_event.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()
        self.thread.join()
        return False


def train_updates(view, config, throttle=THROTTLE_S, budget_s=None, pool=None, register=None, run=None,
                  draw=figures):
    """Yield an Update as the runs train; the verdict, generations and heatmap come with the last one. Closing
    the generator (Stop button, closed tab) stops watching; the job stops when nobody watches it any more. After its time budget (BUDGET_S) the runs stop and show what
    they have. `register(watch)` lets the caller close the watch from elsewhere (the page's Stop button).
    `run`: a LocalRun to follow instead of a shared job (ZeroGPU). `draw(curves, steps)`: the figures each update
    carries (the lesson draws its own from `curves`, and passes one that draws nothing)."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    started = time.perf_counter()
    names = train.run_names(config)
    curves = {m: {"train": [], "answer": [], "prompt": []} for m in names}
    done = {m: 0 for m in names}
    notes, last, first = "", 0.0, None  # first: (time, step) of the first step seen, for the time left
    with run or watch_training(view, config, budget_s, pool) as watch:
        if register:
            register(watch)
        for events in watch.follow(throttle / 2):
            for ev in events:
                if ev["record"] == "plan":
                    notes = " ".join(ev["notes"])
                    continue
                c = curves[ev["mode"]]
                if ev["record"] == "train":
                    c["train"].append((ev["step"], ev["train_loss"]))
                    done[ev["mode"]] = ev["step"]
                    first = first or (time.perf_counter(), ev["step"])
                elif ev["record"] == "eval":
                    c["answer"].append((ev["step"], ev["eval_answer_loss"]))
                    c["prompt"].append((ev["step"], ev["eval_prompt_loss"]))
                elif ev["record"] == "error":
                    raise train.TrainError(f"the training failed: {ev['error']}")
            if time.perf_counter() - last >= throttle:
                last = time.perf_counter()
                yield Update(draw(curves, config.steps), _status(watch, names, done, config, notes,
                                                                    last - started, first), curves=curves)
        if watch.closed:  # the visitor pressed Stop
            yield Update(draw(curves, config.steps), STOPPED, curves=curves)
            return
        final = watch.result
    texts = token_texts(view.loaded.tok, final["heatmap"]["input_ids"])
    steps = min(done.values())
    budget = f" Stopped at the page's time budget of {budget_s:g} s." if final.get("over_budget") else ""
    status = (f"Done in {final['seconds']} s ({steps} of {config.steps} steps per run, batch {config.batch_size}). "
              f"{notes}{budget}")
    said = render.verdict_html(verdict.verdict(curves), verdict.caveats(curves, final["examples"], config.model))
    yield Update(draw(curves, config.steps), status, render.generations_html(final),
                 render.heatmap_html(final, texts), said, curves)


def _status(watch, names, done, config, notes, elapsed, first=None):
    place, sharing = watch.place(), watch.sharing()
    shared = f" · {sharing} who asked for the same run" if sharing else ""
    if place:
        return (f"Waiting for a free worker: {place} (other visitors' runs train first; "
                f"identical runs are shared, not queued). {elapsed:.0f} s{shared}.")
    progress = " · ".join(f"{train.run_title(m)} step {done[m]}/{config.steps}" for m in names)
    return f"Training… {progress} · {elapsed:.1f} s{_time_left(done, config.steps, first)}{shared}. {notes}"


def _time_left(done, steps, first):
    """' · about N s left', from the pace since the first step seen (once there is a pace to go by)."""
    step = min(done.values())
    if first is None or step - first[1] < 5 or step >= steps:
        return ""
    left = (time.perf_counter() - first[0]) / (step - first[1]) * (steps - step)
    return f" · about {left:.0f} s left" if left < 120 else f" · about {left / 60:.0f} min left"
