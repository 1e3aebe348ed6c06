"""Paired training runs: the same tiny model trained twice (or three times), differing only in labels.

Every run starts from bit-identical weights and sees the same batches in the same order; only the
labels differ (whole text vs answer only vs assistant turns only, as `labels.prepare` builds them
for TRL), plus an optional run that weighs prompt tokens w and answer tokens 1 (not a TRL option: the
middle ground studied by Huerta-Enochian & Ko 2024 and Shi et al. 2024). The runs' parameters are
stacked and advance in one step (`Runs`). Two numbers per run:

  * train_loss: the run's own objective, `model(input_ids, attention_mask, labels).loss`, the mean
    over the tokens that run trains on (TRL's per-token averaging); the weighted run's is the weighted
    mean. Runs average over different tokens, so these curves are NOT comparable across runs.
  * eval_answer_loss / eval_prompt_loss: the same held-out examples scored the same way for every
    run, on answer tokens and on prompt tokens. These ARE comparable.

The tiny model only models the token ids that occur in the data (remapped to a compact vocabulary),
so a 32k-150k tokenizer costs no more than a small one: the output layer dominates CPU time.

Three modules, one concern each: sftviz.plan decides what the runs share (settings, labels, held-out split,
batches; no torch), sftviz.engine is the torch side (the model, the stacked runs, evaluation, generation),
and this one runs them (PairedTraining: a thread, its events, stopping). Their public names are imported here.
"""

import copy
import queue
import threading
import time
from dataclasses import asdict

from . import zerogpu
# The training stack's public names, from the module that defines each: the plan (no torch), the engine (torch).
from .engine import (MAX_MODEL_PARAMS, Runs, build_model, check_model, evaluate_all, generate,  # noqa: F401
                     tensors, token_losses, weights_for)
from .plan import (PRESET_LABELS, PRESETS, WEIGHTED, Plan, TrainConfig, TrainError, make_plan,  # noqa: F401
                   preset_name, resolve_modes, run_names, run_title)

def drain(events, timeout):
    """Everything waiting in the queue `events` (waiting up to `timeout` for the first item)."""
    out = []
    try:
        out.append(events.get(timeout=timeout))
        while True:
            out.append(events.get_nowait())
    except queue.Empty:
        pass
    return out


class PairedTraining:
    """The runs trained together, one step of every run per step, in one background thread; iterate over
    their events, stop them. Use as a context manager: leaving it stops and joins the thread (Stop button,
    closed browser tab, Ctrl-C)."""

    def __init__(self, rows, tok, config, device=None):
        import torch

        self.config, self.tok = config, tok
        self.plan = make_plan(rows, tok, config)
        self.device = device or zerogpu.device()
        base = build_model(self.plan)
        if self.plan.vocab is None and base.get_input_embeddings().num_embeddings < len(tok):
            raise TrainError("the pretrained model's vocabulary is smaller than the tokenizer's")
        self.initial_state = {k: v.clone() for k, v in base.state_dict().items()}
        self.names = run_names(config)
        # One stacked model for all runs; with more than one thread, the runs split into that many stacks,
        # stepped side by side in Python threads (independent runs use free cores better than torch's
        # intra-op threads do on models this small). Each stack has its own copy of the model to call.
        groups = max(1, min(config.threads, len(self.names)))
        torch.set_num_threads(max(1, config.threads // groups))  # process-wide
        self.groups = [Runs(copy.deepcopy(base), self.names[g::groups], self.device, config.learning_rate)
                       for g in range(groups)]
        self.runs = self.groups[0]
        self.executor = None
        self.events, self.stop_event = queue.Queue(), threading.Event()
        self.thread = threading.Thread(target=self._guarded, name="sftviz-train", daemon=True)
        self.started = None

    def __enter__(self):
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _guarded(self):
        try:
            self.train()
        except Exception as e:  # reported, never raised into another thread
            self.events.put({"record": "error", "mode": self.names[0], "error": f"{type(e).__name__}: {e}"})

    def batch(self, step):
        """The step's inputs (the same for every run) and each run's weights [runs, batch, positions]."""
        import torch

        plan = self.plan
        idx = plan.batches[step]
        ids = [plan.train_ids[i] for i in idx]
        x, am, answer = tensors(ids, [plan.answer_labels[i] for i in idx], plan.pad_id)
        weights = []
        for name in self.names:
            labels = answer if name == WEIGHTED else tensors(ids, [plan.train_labels[name][i] for i in idx],
                                                             plan.pad_id)[2]
            weights.append(weights_for(plan, name, am, labels, answer))
        d = self.device
        return x.to(d), am.to(d), torch.stack(weights).to(d)

    def each_group(self, fn):
        """fn(group) for every stack of runs, side by side when there are several; {run name: result}."""
        if len(self.groups) == 1:
            results = [fn(self.groups[0])]
        else:
            if self.executor is None:
                from concurrent.futures import ThreadPoolExecutor
                self.executor = ThreadPoolExecutor(len(self.groups), thread_name_prefix="sftviz-train-stack")
            results = list(self.executor.map(fn, self.groups))
        return {name: value for g, values in zip(self.groups, results) for name, value in zip(g.names, values)}

    def step(self, step):
        """One optimizer step of every run; {run name: loss}."""
        x, am, weights = self.batch(step)
        rows = {name: k for k, name in enumerate(self.names)}
        return self.each_group(lambda g: g.step(x, am, weights[[rows[n] for n in g.names]]))

    def run_model(self, name):
        """The run `name` as an ordinary model."""
        group = next(g for g in self.groups if name in g.names)
        return group.model(group.names.index(name))

    def emit_eval(self, step, losses=None):
        scores = self.each_group(lambda g: evaluate_all(g, self.plan, self.device))
        for name, (answer, prompt) in ((n, scores[n]) for n in self.names):
            self.events.put(dict(record="eval", mode=name, step=step,
                                 train_loss=None if losses is None else losses[name], eval_answer_loss=answer,
                                 eval_prompt_loss=prompt))

    def train(self):
        cfg = self.config
        self.emit_eval(0)
        for step in range(cfg.steps):
            if self.stop_event.is_set():
                for name in self.names:
                    self.events.put({"record": "stopped", "mode": name, "step": step})
                return
            losses = self.step(step)
            for name in self.names:
                self.events.put({"record": "train", "mode": name, "step": step + 1, "train_loss": losses[name]})
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                self.emit_eval(step + 1, losses)
        for name in self.names:
            self.events.put({"record": "done", "mode": name, "step": cfg.steps})

    def stop(self, timeout=30):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def alive(self):
        return self.thread.is_alive()

    def poll(self, timeout=0.1):
        """Events available now (waits up to `timeout` for the first)."""
        return drain(self.events, timeout)

    def events_until_done(self):
        while self.alive() or not self.events.empty():
            yield from self.poll()

    def decode(self, compact_ids):
        ids = [self.plan.vocab[i] for i in compact_ids] if self.plan.vocab else compact_ids
        return self.tok.decode(ids)

    def results(self):
        """After training: greedy generations per held-out prompt, and per-token losses of one example."""
        models = {name: self.run_model(name) for name in self.names}
        gens = []
        for k, prompt in enumerate(self.plan.gen_prompts):
            item = {"prompt": self.decode(prompt), "reference": self.plan.gen_references[k], "outputs": {}}
            for name, model in models.items():
                out, eos = generate(model, self.plan, prompt, self.device)
                text = self.decode(out)
                item["outputs"][name] = {"text": text, "stopped_at_eos": eos,
                                         "empty": not self.decode(out[:-1] if eos else out).strip(),
                                         "next_turn": any(m in text for m in ("<|im_start|>user", "Question:",
                                                                              "<|user|>", "### Instruction"))}
            gens.append(item)
        if self.config.model != "tiny":  # a pretrained model: what it answered before any training, beside
            before = build_model(self.plan).to(self.device)  # (its weights as loaded: the runs' initial state)
            for k, prompt in enumerate(self.plan.gen_prompts):
                out, eos = generate(before, self.plan, prompt, self.device)
                gens[k]["before"] = {"text": self.decode(out), "stopped_at_eos": eos}
            del before
        ex = self.plan.eval_ids[0]
        ids = [self.plan.vocab[i] for i in ex] if self.plan.vocab else ex
        heat = {"input_ids": ids, "answer_positions": self.plan.eval_answer[0],
                "losses": {name: token_losses(model, ex, self.device) for name, model in models.items()}}
        return {"record": "final", "generations": gens, "heatmap": heat,
                "seconds": round(time.perf_counter() - self.started, 2), "notes": self.plan.notes,
                "examples": {"train": len(self.plan.train_ids), "held_out": len(self.plan.eval_ids)},
                "config": asdict(self.config)}
