"""What the web page shows, computed without gradio: load + label (cached, shared by all users), then
HTML and figures for one example. app.py only wires these functions to components.
"""

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from . import TRL_VERSION, data, plots, render
from .labels import Options, TRLRefusal, collate, prepare
from .tokenizer import load_tokenizer, token_texts

BATCH = 8  # SFTConfig.per_device_train_batch_size default
MAX_ROWS = 5000  # the page loads at most this many rows of a dataset, so a shared Space stays responsive
MODE_CHOICES = [  # (label on the page, engine mode)
    ("Answer only (completion_only_loss)", "completion"),
    ("Whole text", "whole"),
    ("Assistant turns only (assistant_only_loss)", "assistant"),
    ("TRL default for this data", "auto"),
]
MODE_NAMES = {m: label for label, m in MODE_CHOICES}


class _LRU:
    """A small thread-safe cache: many students on one Space load the same sample."""

    def __init__(self, size):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


_loads, _preps = _LRU(8), _LRU(32)


@dataclass
class Loaded:
    source: str
    kind: str
    raw: list
    rows: list
    tok: object
    tok_name: str
    mapping: object = None
    key: tuple = ()  # what it was loaded from (dataset, config, split, tokenizer, templates)
    tokenized: dict = field(default_factory=dict)  # labels.prepare's cache: tokenize once for every mode


def load(source, tokenizer="default", prompt_template=None, completion_template=None, config=None, split="train"):
    key = (source, config, split, tokenizer, prompt_template, completion_template)

    def make():
        raw = data.load(source, config, split, limit=MAX_ROWS)
        kind = data.detect(raw)
        mapping = None
        if kind in data.DEFAULT_MAPPINGS:
            base = data.DEFAULT_MAPPINGS[kind]
            mapping = data.Mapping(prompt_template or base.prompt, completion_template or base.completion)
        rows = data.to_trl(raw, kind, mapping)
        return Loaded(source, kind, raw, rows, load_tokenizer(tokenizer), tokenizer, mapping, key)

    return _loads.get(key, make)


def prepared(loaded, options):
    key = (loaded.key, options.mode, options.max_length, options.packing, options.packing_strategy)
    return _preps.get(key, lambda: prepare(loaded.rows, loaded.tok, options, cache=loaded.tokenized))


def compare_modes(kind):
    """The two modes worth comparing for this kind of data."""
    if kind in ("conversational", "sharegpt"):
        return "whole", "assistant"
    return "whole", "completion"


@dataclass
class View:
    loaded: Loaded
    options: Options
    prep: object
    texts: dict = field(default_factory=dict)

    @property
    def n(self):
        return len(self.prep.sequences)

    def token_texts(self, i):
        if i not in self.texts:
            self.texts[i] = token_texts(self.loaded.tok, self.prep.sequences[i].input_ids)
        return self.texts[i]

    def displayed(self, i):
        """Sequence i as it sits in its batch of 8 (padded to the longest), with a note saying so."""
        seqs = self.prep.sequences
        seq = seqs[i]
        if self.prep.padding_free:
            return seq, "Padding-free packing: no padding, one flat row per batch."
        if seq.dropped:
            return seq, ""
        kept = [k for k, s in enumerate(seqs) if not s.dropped]
        pos = kept.index(i)
        start = pos - pos % BATCH
        batch = [seqs[k] for k in kept[start:start + BATCH]]
        padded = collate(batch, self.prep.pad_token_id)[pos - start]
        pad = len(padded.input_ids) - len(seq.input_ids)
        return padded, (f"Shown as row {pos - start + 1} of a batch of {len(batch)} (TRL's default batch size; "
                        f"here consecutive examples), right-padded to the longest: {pad} padding tokens.")


def open_view(source, tokenizer, prompt_template, completion_template, mode, max_length, packing, strategy,
              config=None, split="train"):
    loaded = load(source, tokenizer, prompt_template or None, completion_template or None, config, split)
    options = Options(mode, max_length, packing, strategy)
    return View(loaded, options, prepared(loaded, options))


def warm(source, mode):
    """Load, label and compute stats for the default view ahead of the first visitor, and import the
    training stack (torch, the model class), so the first Train click starts in well under 3 s."""
    v = open_view(source, "default", "", "", mode, 1024, False, "bfd")
    example_html(v, 0), compare_html(v, 0), stats(v)
    import torch  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401


def describe(view):
    kind = view.loaded.kind
    p = view.prep
    dropped = sum(s.dropped for s in p.sequences)
    n = len(view.loaded.rows)
    first = f" (the first {MAX_ROWS} rows)" if n == MAX_ROWS else ""
    lines = [f"**{os.path.basename(view.loaded.source)}**: {n} examples{first} — {data.EXPLAIN.get(kind, kind)}",
             f"Mode **{MODE_NAMES[view.options.mode]}** → SFTConfig(completion_only_loss={p.completion_only_loss}, "
             f"assistant_only_loss={p.assistant_only_loss}); labels exactly as TRL {TRL_VERSION} builds them."]
    if view.options.packing:
        lines.append(f"Packing ({view.options.packing_strategy}): {view.n} rows of at most "
                     f"{view.options.max_length} tokens.")
    if dropped:
        lines.append(f"⚠ {dropped} example(s) have no label left after truncation to max_length "
                     f"{view.options.max_length}: TRL drops them (shown here, flagged).")
    if view.options.mode == "completion" and kind in ("language_modeling", "conversational", "sharegpt"):
        lines.append("⚠ completion_only_loss does nothing on this kind of data (there is no prompt/completion "
                     "split): TRL silently trains on every token. For chats, use assistant turns only.")
    for w in p.warnings:
        lines.append(f"⚠ {w}")
    if p.chat_template:
        lines.append("TRL swapped in its training chat template (with {% generation %} tags) for this tokenizer.")
    return "\n\n".join(lines)


def example_html(view, i):
    """(token view, shift view, packing view) for sequence i."""
    i = max(0, min(int(i), view.n - 1))
    texts = view.token_texts(i)
    seq, note = view.displayed(i)
    pad_text = token_texts(view.loaded.tok, [view.prep.pad_token_id])[0]  # GPT-2 pads with its EOS
    texts = texts + [pad_text] * (len(seq.input_ids) - len(texts))
    token = render.token_view(seq, texts, note)
    shift = render.shift_view(seq, texts)
    pack = ""
    if view.options.packing:
        pack = render.packing_view(seq, i, f"{view.n} packed rows in all; bfd sorts documents longest-first, so "
                                           "row order differs from the dataset order.")
    return token, shift, pack


def compare_html(view, i):
    """The same example under the two modes that matter for this data, changes outlined."""
    if view.options.packing:
        return render.error_html("Mode comparison is per example: turn packing off to compare.")
    a, b = compare_modes(view.loaded.kind)
    seqs = []
    for mode in (a, b):
        try:
            seqs.append(prepared(view.loaded, Options(mode, view.options.max_length)).sequences[i])
        except TRLRefusal as e:
            return render.error_html(f"{MODE_NAMES[mode]}: TRL refuses: {e}")
    return render.compare_view(MODE_NAMES[a], seqs[0], MODE_NAMES[b], seqs[1], view.token_texts(i))


def search(view, query, start):
    """Index of the next example (after `start`, wrapping) whose source text contains `query`."""
    q = (query or "").strip().lower()
    if not q:
        return start
    n = len(view.loaded.rows)
    for k in range(1, n + 1):
        j = (start + k) % n
        if q in str(view.loaded.rows[j]).lower():
            if view.options.packing:  # jump to the packed row holding that example
                return next((r for r, s in enumerate(view.prep.sequences) if j in s.sources), start)
            return j
    return start


def stats(view):
    """Dataset-level numbers and figures: roles per mode, zero-trained examples, lengths vs max_length."""
    loaded, opts = view.loaded, view.options
    per_mode = {}
    for mode in dict.fromkeys([opts.mode, *compare_modes(loaded.kind)]):
        try:
            p = prepared(loaded, Options(mode, opts.max_length, opts.packing, opts.packing_strategy))
        except TRLRefusal:
            continue
        kept = [s.role_counts() for s in p.sequences if not s.dropped]
        per_mode[MODE_NAMES[mode]] = {"target": sum(c["target"] for c in kept),
                                      "context": sum(c["context"] for c in kept),
                                      "dropped": sum(s.dropped for s in p.sequences)}
    lengths = [len(s.input_ids) for s in prepared(loaded, Options(opts.mode, None)).sequences] \
        if not opts.packing else [len(s.input_ids) for s in view.prep.sequences]
    cur = per_mode.get(MODE_NAMES[opts.mode], {"target": 0, "context": 0, "dropped": 0})
    total = cur["target"] + cur["context"]
    md = (f"**{len(loaded.rows)}** examples · **{total}** tokens kept · **{cur['target']}** target / "
          f"**{cur['context']}** context ({100 * cur['target'] / max(total, 1):.0f}% trained) · "
          f"**{cur['dropped']}** examples with zero trained tokens (dropped by TRL) · "
          f"{sum(n > (opts.max_length or 10**9) for n in lengths)} longer than max_length.")
    return md, plots.roles_figure(per_mode), plots.length_figure(lengths, opts.max_length)


def train_modes(kind, chosen):
    """The modes to train, with "answer only" meaning assistant turns for chat data."""
    chat = kind in ("conversational", "sharegpt")
    modes = [("assistant" if chat and m == "completion" else m) for m in chosen]
    return tuple(dict.fromkeys(modes))


def train_updates(v, config, throttle=0.4):
    """Run the paired training on the view's data; yield (figure, status, generations, heatmap) as it goes.

    Closing the generator (Stop button, closed tab) stops and joins the training threads."""
    import time

    from . import train

    started = time.perf_counter()
    curves = {m: {"train": [], "answer": [], "prompt": []} for m in config.modes}
    done = {m: 0 for m in config.modes}
    with train.PairedTraining(v.loaded.rows, v.loaded.tok, config) as pt:
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
            finished = not pt.alive() and pt.events.empty()
            if finished or time.perf_counter() - last >= throttle:
                last = time.perf_counter()
                progress = " · ".join(f"{plots.MODE_TITLES.get(m, m)} step {done[m]}/{config.steps}"
                                      for m in config.modes)
                status = f"Training… {progress} · {last - started:.1f} s. {notes}"
                if finished:
                    break
                yield plots.loss_figure(curves, config.steps), status, None, None
        final = pt.results()
    texts = token_texts(v.loaded.tok, final["heatmap"]["input_ids"])
    status = (f"Done in {final['seconds']} s ({config.steps} steps per run, batch {config.batch_size}). {notes} "
              f"Compare the right-hand plot: the same held-out tokens for every run.")
    yield (plots.loss_figure(curves, config.steps), status,
           render.generations_html(final, plots.MODE_TITLES), render.heatmap_html(final, texts, plots.MODE_TITLES))
