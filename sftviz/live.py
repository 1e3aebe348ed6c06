"""Live training for the page: run the paired training on a view's data and yield what to draw, on a
time throttle (a browser re-renders a plot in ~60 ms; faster updates pile up). No gradio here."""

import os
import time

from . import plots, render, train
from .labels import MODES
from .tokenizer import token_texts

THROTTLE_S = 0.4  # seconds between two plot updates
BUDGET_S = float(os.environ.get("SFTVIZ_TRAIN_SECONDS", 900))  # a page's training stops after this, finished or not


def train_updates(view, config, throttle=THROTTLE_S, budget_s=None):
    """Yield (figure, status, generations, heatmap) as the runs train; generations and heatmap (else None)
    come with the last update. Closing the generator (Stop button, closed tab) stops and joins the runs;
    so does the time budget (BUDGET_S), after which the results so far are shown."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    started = time.perf_counter()
    curves = {m: {"train": [], "answer": [], "prompt": []} for m in config.modes}
    done = {m: 0 for m in config.modes}
    with train.PairedTraining(view.loaded.rows, view.loaded.tok, config) as pt:
        notes = " ".join(pt.plan.notes)
        last = 0.0
        for batch in iter(lambda: pt.poll(0.05), None):
            for ev in batch:
                c = curves[ev["mode"]]
                if ev["record"] == "train":
                    c["train"].append((ev["step"], ev["train_loss"]))
                    done[ev["mode"]] = ev["step"]
                elif ev["record"] == "eval":
                    c["answer"].append((ev["step"], ev["eval_answer_loss"]))
                    c["prompt"].append((ev["step"], ev["eval_prompt_loss"]))
                elif ev["record"] == "error":
                    raise train.TrainError(f"{ev['mode']} run failed: {ev['error']}")
            over_budget = time.perf_counter() - started > budget_s
            if over_budget and pt.alive():
                pt.stop()
                notes += f" Stopped at the page's time budget of {budget_s:g} s."
            finished = not pt.alive() and pt.events.empty()
            if finished or time.perf_counter() - last >= throttle:
                last = time.perf_counter()
                progress = " · ".join(f"{MODES[m].title} step {done[m]}/{config.steps}" for m in config.modes)
                status = f"Training… {progress} · {last - started:.1f} s. {notes}"
                if finished:
                    break
                yield plots.loss_figure(curves, config.steps), status, None, None
        final = pt.results()
    texts = token_texts(view.loaded.tok, final["heatmap"]["input_ids"])
    steps = min(done.values())
    status = (f"Done in {final['seconds']} s ({steps} of {config.steps} steps per run, batch {config.batch_size}). "
              f"{notes} Compare the right-hand plot: the same held-out tokens for every run.")
    yield (plots.loss_figure(curves, config.steps), status, render.generations_html(final),
           render.heatmap_html(final, texts))
