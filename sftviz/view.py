"""What the web page shows, computed without gradio: one request in, a cached load + labels, then HTML
and figures for one example or the whole dataset. app.py only wires these functions to components.

To add a per-example view: write a function (view, i) -> HTML below and add a row to EXAMPLE_TABS;
the page creates its tab and keeps it up to date.
"""

import os
import threading
from collections import Counter, OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from . import TRL_VERSION, bounded, data, doctor, export, jobs, markers, plots, render
from .footprint import footprint
from . import labels
from .labels import LABELS_MEANING, MODES, Options, TRLRefusal, answer_mode, collate, prepare
from .markers import RULES
from .packing import STRATEGIES
from .shown import VIEW_TOKENS, Shown
from .tokenizer import load_tokenizer, token_texts

BATCH = 8  # SFTConfig.per_device_train_batch_size default
MAX_ROWS = 5000  # the page loads at most this many rows of a dataset, so a shared Space stays responsive
CACHE_MB = int(os.environ.get("SFTVIZ_CACHE_MB", 1024))  # loaded and labelled data kept for every visitor
HUB_SECONDS = float(os.environ.get("SFTVIZ_HUB_SECONDS", 60))  # streaming rows from the Hub takes longer
FULL_ROWS = int(os.environ.get("SFTVIZ_DOCTOR_ROWS", 500_000))  # the page's full doctor pass reads at most this
FULL_SECONDS = float(os.environ.get("SFTVIZ_DOCTOR_SECONDS", 300))  # ... and for at most this long (CLI: no limit)
FULL_CHUNK = 5000  # rows per step of the full pass (one progress update each)
TOKENIZED_KEEP = 200_000  # token ids of a dataset kept for other modes' labelling (more are tokenized again)


@dataclass(frozen=True)
class ViewRequest:
    """Everything the page asks for, in one object: which data, which tokenizer, which templates, which options."""

    source: str  # a bundled sample name, an uploaded file or a Hub id
    where: str = "any"  # what the source may be, for data.load: any | sample | file | hub
    tokenizer: str = "default"
    tokenizer_where: str = "any"  # for load_tokenizer: any | hub
    prompt_template: str | None = None  # mapping templates (None: the shape's default, if it needs one)
    completion_template: str | None = None
    config: str | None = None  # Hub dataset config and split
    split: str = "train"
    options: Options = Options("completion")
    columns: str = "trl"  # how to read the file's columns: a key of data.READINGS
    compare: str = "auto"  # what Compare modes puts beside these labels: a key of COMPARE

    @property
    def data_source(self):
        """Where the rows come from and how to read them, as data and the doctor take it."""
        return data.Source(self.source, self.where, self.config, self.split, self.prompt_template or None,
                           self.completion_template or None, self.options.text_field, self.columns)

    @property
    def data_key(self):
        """What the loaded rows and tokenizer depend on (not the mode, max_length or packing)."""
        return self.data_source, self.tokenizer, self.tokenizer_where

    @property
    def name(self):
        return os.path.basename(self.source)


class _LRU:
    """A thread-safe cache bounded in bytes, shared by every visitor (a class loads the same sample).
    `make()` returns (value, bytes), the bytes what keeping the value costs in memory (footprint). While one
    visitor's request computes a value, others asking for it wait for that result instead of computing
    it again (thirty students opening the same page start one load, not thirty)."""

    def __init__(self, max_bytes):
        self.max_bytes, self.data, self.sizes, self.lock = max_bytes, OrderedDict(), {}, threading.Lock()
        self.pending = {}  # key -> Future of the value being computed

    def get(self, key, make):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
            waiting = self.pending.get(key)
            if waiting is None:
                future = self.pending[key] = Future()
        if waiting is not None:
            try:
                return waiting.result()  # the same value, or the same error
            except bounded.Replaced:  # the visitor who started it moved on: compute it for this one
                return self.get(key, make)
        try:
            value, size = make()
        except BaseException as e:
            with self.lock:
                del self.pending[key]
            future.set_exception(e)
            raise
        with self.lock:
            self.data[key], self.sizes[key] = value, size
            del self.pending[key]
            self._evict()
        future.set_result(value)
        return value

    def grow(self, key, size):
        """The cached value at `key` now holds `size` bytes more."""
        with self.lock:
            if key in self.sizes:
                self.sizes[key] += size
                self._evict()

    def forget(self, drop):
        """Drop every entry for which drop(key) is true (e.g. a closed session's upload)."""
        with self.lock:
            for key in [k for k in self.data if drop(k)]:
                del self.data[key], self.sizes[key]

    def _evict(self):
        while len(self.data) > 1 and sum(self.sizes.values()) > self.max_bytes:
            key, _ = self.data.popitem(last=False)
            del self.sizes[key]

    def total(self):
        with self.lock:
            return sum(self.sizes.values())


_loads, _preps = _LRU(CACHE_MB * 2**20 // 2), _LRU(CACHE_MB * 2**20 // 2)
_stats = _LRU(32 * 2**20)  # the dataset statistics and their figures, per view


@dataclass
class Loaded(data.Loaded):
    """data.Loaded plus the tokenizer, and labels.prepare's cache (tokenize once for every mode)."""

    tok: object = None
    key: tuple = ()
    tokenized: dict = field(default_factory=dict)


def load(request):
    """Load, map and check the rows and load the tokenizer: in a child process within the work budget
    (a visitor's template, file or Hub id is computed there), then cached for everyone."""
    seconds = HUB_SECONDS if request.where in ("hub", "any") and request.source not in data.samples() \
        else None  # bounded.SECONDS
    what = f"loading {request.name}" + (" with your template" if request.prompt_template or
                                        request.completion_template else "")
    loaded = _loads.get(request.data_key, lambda: measured(*bounded.run(_load, request, seconds=seconds,
                                                                        what=what)))
    if isinstance(loaded, data.TRLStops):  # TRL's refusal is an answer too: kept, and said again
        raise data.TRLStops(*loaded.args)
    return loaded


def measured(value, pickled=0):
    """(value, the memory it holds): what the caches count (at least its pickle's size: an object footprint
    cannot see into, such as a decoded image, is counted by that)."""
    return value, max(footprint(value), pickled)


def _load(request):  # in the child process
    try:
        loaded = data.load_trl(request.data_source, MAX_ROWS)
    except data.TRLStops as stop:
        return stop
    return Loaded(**vars(loaded), tok=load_tokenizer(request.tokenizer, request.tokenizer_where),
                  key=request.data_key)


def prepared(loaded, options):
    """labels.prepare for these options, in a child process (chat templates run there), cached. The
    tokenization it did is kept with the loaded data, so other modes of the same data reuse it."""
    def make():
        (prep, tokenized), _ = bounded.run(_prepare, loaded, options,
                                           what=f"labelling {os.path.basename(loaded.source)}")
        loaded.tokenized.update(tokenized)
        _loads.grow(loaded.key, footprint(tokenized))
        return measured(prep)

    return _preps.get((loaded.key, options), make)


def _prepare(loaded, options):  # in the child process
    cache = dict(loaded.tokenized)
    prep = prepare(loaded.rows, loaded.tok, options, cache=cache)
    prep.sequences = Shown(prep.sequences)  # what the page shows is all the server gets, in compact arrays
    new = {k: v for k, v in cache.items() if k not in loaded.tokenized and _tokens_in(v) <= TOKENIZED_KEEP}
    return prep, new


def _tokens_in(tokenized):
    ids = tokenized[0]  # labels.tokenize's (ids, ...): one list of ids per row
    return sum(len(x) for x in ids)


def forget(source_gone):
    """Drop everything cached from a source for which source_gone(source) is true (a visitor's upload when
    they leave). The keys: a load's is its data_key, whose first item is the data.Source; the others start
    with the data_key."""
    _loads.forget(lambda key: source_gone(key[0].name))
    _preps.forget(lambda key: source_gone(key[0][0].name))
    _stats.forget(lambda key: source_gone(key[0][0].name))
    jobs.POOL.forget(source_gone)  # background jobs are tagged with their source


@dataclass
class View:
    loaded: Loaded
    options: Options
    prep: object
    texts: dict = field(default_factory=dict)
    marked: tuple = ()  # token positions to outline in the token view
    compare: str = "auto"  # a key of COMPARE

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
        shown = (f" Showing the last {len(seq.input_ids):,} of {seq.full_length:,} tokens (positions "
                 f"{seq.offset:,}-{seq.full_length - 1:,}): the page shows at most {VIEW_TOKENS:,} per example; "
                 f"python -m sftviz inspect shows them all.") if seq.offset else ""
        if self.prep.padding_free:
            return seq, "Padding-free packing: no padding, one flat row per batch." + shown
        if seq.dropped:
            return seq, shown.strip()
        kept = [k for k, dropped in enumerate(seqs.dropped) if not dropped]
        pos = kept.index(i)
        start = pos - pos % BATCH
        batch = kept[start:start + BATCH]
        pad = max(seqs.lengths[k] for k in batch) - seq.full_length
        padded = seq
        if pad and not seq.offset:  # the padding shown, up to the page's limit
            padded = collate([seq], self.prep.pad_token_id, pad_to=min(seq.full_length + pad, VIEW_TOKENS))[0]
        shown_pad = len(padded.input_ids) - len(seq.input_ids)
        return padded, (f"Shown as row {pos - start + 1} of a batch of {len(batch)} (TRL's default batch size; "
                        f"here consecutive examples), right-padded to the longest: {pad:,} padding tokens"
                        + (f" ({shown_pad:,} shown)." if pad and shown_pad < pad else ".") + shown)

    def displayed_texts(self, i):
        """(sequence as shown, its token texts, the note); padding shows the real pad token (EOS for GPT-2)."""
        seq, note = self.displayed(i)
        texts = self.token_texts(i)
        pad_text = token_texts(self.loaded.tok, [self.prep.pad_token_id])[0]
        return seq, texts + [pad_text] * (len(seq.input_ids) - len(texts)), note


@dataclass
class Refused:
    """TRL stops on the file as it is: its reason, and each fix (a data.READINGS key) as a View of its own,
    so the page can show what TRL trains once the file is fixed, side by side."""

    request: ViewRequest
    reason: str
    fixes: dict  # reading -> View

    @property
    def n(self):
        return min((v.n for v in self.fixes.values()), default=1)

    @property
    def first_row(self):
        """The file's first row, as read (every fix reads the same file)."""
        return next(iter(self.fixes.values())).loaded.raw[0] if self.fixes else {}


def open_view(request):
    """The View of a request, or Refused where TRL stops on the file as it is."""
    try:
        loaded = load(request)
    except data.TRLStops as stop:
        return Refused(request, str(stop), {fix: open_view(replace(request, columns=fix)) for fix in stop.fixes})
    return View(loaded, request.options, prepared(loaded, request.options), compare=request.compare)


def import_training_stack():
    """Import torch and the model class now, in the server, before any child process is forked: the first Train
    click then starts in well under 3 s, no import is half done in another thread at a fork, and no child maps
    torch's libraries under its memory budget (the CUDA build of torch maps more than sftviz.bounded allows)."""
    import torch  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401


def warm(request):
    """Load, label, compute stats and the doctor's findings for the default view ahead of the first visitor."""
    v = open_view(request)
    example_views(v, 0), stats(v), findings(v)


def describe(view):
    if isinstance(view, Refused):
        return describe_refused(view)
    kind = view.loaded.kind
    p = view.prep
    mode = MODES[view.options.mode]
    dropped = sum(p.sequences.dropped)
    n = len(view.loaded.rows)
    first = f" (the first {MAX_ROWS} rows)" if n == MAX_ROWS else ""
    lines = [f"**{os.path.basename(view.loaded.source)}**: {n} example{'s' if n != 1 else ''}{first} — "
             f"{data.EXPLAIN.get(kind, kind)}",
             f"Mode **{mode_words(view)}**: SFTConfig(completion_only_loss={mode.completion_only_loss}"
             + (f", which TRL resolves to {p.completion_only_loss} for this data" if mode.completion_only_loss is None
                else "") + f", assistant_only_loss={p.assistant_only_loss}); labels exactly as TRL {TRL_VERSION} "
             f"builds them." if view.options.rules == "trl" else trainer_line(view.options)]
    lines += columns_lines(view)
    if view.options.packing:
        lines.append(f"Packing ({view.options.packing_strategy}): {view.n} rows of at most "
                     f"{view.options.max_length} tokens.")
    if dropped and view.options.rules == "unsloth":
        cut = f", or cut by max_length {view.options.max_length}" if view.options.max_length else ""
        lines.append(f"⚠ {dropped} example(s) have no label left (no response marker found{cut}): Unsloth removes "
                     f"them (shown here, flagged).")
    elif dropped:
        lines.append(f"⚠ {dropped} example(s) have no label left after truncation to max_length "
                     f"{view.options.max_length}: TRL drops them (shown here, flagged).")
    if view.options.rules == "trl" and mode.completion_only_loss and \
            labels.not_for(view.options.mode, view.loaded.rows[0]):  # the one rule
        lines.append("⚠ completion_only_loss does nothing on this kind of data (there is no prompt/completion "
                     "split): TRL silently trains on every token. For chats, use assistant turns only.")
    for w in p.warnings:
        lines.append(f"⚠ {w}")
    replaced = view.loaded.notes.get("replaced", 0)
    if replaced:
        lines.append(f"⚠ {replaced} row(s) hold text that is not valid (e.g. a lone surrogate such as \\ud800 in "
                     f"JSON), shown as �: TRL's tokenizer cannot encode such text, so fix it in the file.")
    if p.chat_template:
        lines.append("TRL swapped in its training chat template (with {% generation %} tags) for this tokenizer.")
    return "\n\n".join(lines)


def trainer_line(o):
    """What the other trainer searches for, as its user would call it."""
    r = RULES[o.rules]
    args = ", ".join(f"{flag}={value!r}" for flag, value in zip(r.markers, (o.response, o.instruction)) if value)
    call = f"DataCollatorForCompletionOnlyLM({args})" if o.rules == "trl-0.19" else \
        f"train_on_responses_only(trainer, {args})"
    return (f"Trainer **{r.label}**: {call}. The labels are where its search of the token ids for the markers "
            f"leaves them, exactly as its own code does; the mode above is TRL 1.16's and does not apply.")


def columns_lines(view):
    """How the file's columns were read: what TRL does with it as it is, when the page shows something else,
    and the other readings on offer."""
    decision, raw, field = view.loaded.decision, view.loaded.raw[0], view.options.text_field
    if decision is None:
        return []
    lines = []
    as_is = data.as_is_line(decision, field)
    if as_is:
        lines.append(f"⚠ {as_is} Shown: " + data.fix_words(decision.reading, raw, field) + ".")
    elif decision.kind == "language_modeling" and len(raw) > 1:
        ignored = [c for c in raw if c != field]
        lines.append(f"TRL reads only `{field}` and ignores {data.column_list(ignored)}.")
    for other in decision.offers:
        if other != decision.reading:
            template = ""
            shape = data.mapping_shape(raw)
            if other == "map" and shape:
                m = data.default_mapping(shape, raw)
                template = f" (prompt template `{m.prompt!r}`, completion template `{m.completion!r}`, editable)"
            lines.append(f"Or, one click under **How to read your columns**: {data.fix_words(other, raw, field)}"
                         f"{template}.")
    return lines


def describe_refused(refused):
    """TRL's refusal in one line, then each fix: what it changes, and how much of the data it trains."""
    raw = refused.first_row
    has_text = refused.request.options.text_field in raw
    lines = [("**Whole text or answer only? Neither, as your file is:** " if has_text else "⚠ ") + refused.reason]
    field = refused.request.options.text_field
    fixes = []
    for k, (fix, v) in enumerate(refused.fixes.items(), 1):
        seqs = v.prep.sequences
        counts = [c for c, dropped in zip(seqs.counts, seqs.dropped) if not dropped]
        target, real = sum(c["target"] for c in counts), sum(c["target"] + c["context"] for c in counts)
        fixes.append(f"**Fix {k}**: {data.fix_words(fix, raw, field)} ({100 * target / max(real, 1):.0f}% of the "
                     f"tokens trained).")
    lines.append(" ".join(fixes) if fixes else
                 "Rename the columns to `prompt` and `completion`, or drop `prompt` and keep a text column.")
    if fixes:
        lines.append("Each fix is one click under **How to read your columns**; the Tokens tab shows what each "
                     "trains on this example.")
    return "\n\n".join(lines)


# --- Per-example views: each is (view, i) -> HTML, one tab on the page --------------------------------

def mode_words(view):
    """The mode as the page names it, the TRL default with what it resolves to for this data (or, under another
    trainer, that trainer's name: TRL 1.16's modes do not apply there)."""
    if view.options.rules != "trl":
        return RULES[view.options.rules].label
    return labels.mode_words(view.options.mode, view.loaded.rows[0])


def tokens_tab(view, i):
    seq, texts, note = view.displayed_texts(i)
    return render.token_view(seq, texts, note, view.marked, mode_words(view))


def shift_tab(view, i):
    seq, texts, _ = view.displayed_texts(i)
    return render.shift_view(seq, texts)


def compare_modes(rows):
    """The two modes worth comparing for this data: whole text, and answers only."""
    return "whole", answer_mode(rows)


COMPARE = {  # what Compare modes shows beside the labels on screen: "auto", or one of these
    "auto": "TRL 1.16 whole text vs answers only (under another trainer: TRL 1.16 answers only vs it)",
    "whole": "TRL 1.16 · whole text", "answers": "TRL 1.16 · answers only", "trl-0.19": RULES["trl-0.19"].label,
    "unsloth": RULES["unsloth"].label}


def compared(view):
    """[(label, Options)] of the two sides Compare modes shows: the labels on screen and the choice, or (auto) TRL
    1.16's whole text and answers only, or TRL 1.16's answers only and the other trainer on screen."""
    o, rows = view.options, view.loaded.rows
    trl = lambda mode: (f"TRL 1.16 · {MODES[mode].label}", Options(mode, o.max_length, text_field=o.text_field))  # noqa
    here = (f"TRL 1.16 · {labels.mode_words(o.mode, rows[0])}" if o.rules == "trl" else RULES[o.rules].label, o)
    if view.compare == "auto":
        if o.rules == "trl":
            return [(MODES[m].label, trl(m)[1]) for m in compare_modes(rows)]
        return [trl(answer_mode(rows)), here]
    if view.compare in ("whole", "answers"):
        return [here, trl("whole" if view.compare == "whole" else answer_mode(rows))]
    response, instruction = (o.response, o.instruction) if o.rules != "trl" else (None, None)
    if not response:  # read from the chat template, for chats only (as the Trainer choice does)
        chat = labels.row_type(rows[0]).startswith("conversational")
        proposed = markers.propose(view.loaded.tok) if chat else None
        if not proposed:
            raise TRLRefusal(f"{RULES[view.compare].label} needs the markers it searches for (read from the chat "
                             "template only for chats): pick it as the Trainer and type them")
        instruction, response = proposed
    if view.compare == "unsloth" and not instruction:
        raise TRLRefusal("Unsloth needs an instruction marker too: pick it as the Trainer and type both")
    return [here, (RULES[view.compare].label, replace(o, rules=view.compare, response=response,
                                                      instruction=instruction, packing=False))]


def compare_tab(view, i):
    """The same example under two labellings (compared()), the tokens whose role differs outlined."""
    if view.options.packing:
        return render.error_html("Mode comparison is per example: turn packing off to compare.")
    try:
        sides = compared(view)
        seqs = [prepared(view.loaded, options).sequences[i] for _, options in sides]
    except TRLRefusal as e:
        return render.error_html(f"Compare: refused: {e}")
    return render.compare_view(sides[0][0], seqs[0], sides[1][0], seqs[1], view.token_texts(i))


def packing_tab(view, i):
    if not view.options.packing:
        return PACKING_OFF
    strategy = STRATEGIES[view.options.packing_strategy]
    seq, _, _ = view.displayed_texts(i)
    return render.packing_view(seq, i, strategy, f"{view.n} packed rows in all. {strategy.name}: "
                                                 f"{strategy.description}.")


EXPLAIN_LABELS = f"""**What are the labels?** TRL's answer, in its own terms: **{LABELS_MEANING}**. The line above the
tokens shows the literal list for this example. **-100** is PyTorch's "ignore" value: that position adds no loss, but
its token is still read as input. **Answer only** sets the prompt's labels to -100, so the model learns to answer
without learning to write prompts; **whole text** keeps every label, so it trains on everything."""

EXPLAIN_SHIFT = """**Why the shift?** A causal LM at position *t* reads tokens 0…t and predicts token *t+1*. TRL stores
`labels` unshifted (a copy of `input_ids`, -100 where not trained): the model shifts them itself, so its output at *t*
is scored against `labels[t+1]`. The first token is never predicted (nothing comes before it); the last position has
nothing to predict. Greyed pairs carry no loss."""

@dataclass(frozen=True)
class Shape:
    """A row of the "Whole text or only the answer?" table: a data shape, what TRL trains on it by default (checked
    against the label engine by tests/test_render.py), and the bundled sample that shows it."""

    columns: str
    trains: str  # labels.resolves_to(TRL default, its first row), or what TRL does instead
    why: str
    sample: str


SHAPES = (
    Shape("`text`", "whole text", "no prompt to mask: every token, plus EOS, is trained", "quiz_text"),
    Shape("`prompt` + `completion`", "answer only", "completion_only_loss defaults to None, which TRL resolves to True here: the prompt gets -100",
          "quiz_prompt_completion"),
    Shape("`messages` (a chat)", "whole text", "every token the chat template renders; set assistant_only_loss=True "
          "to train the assistant turns only", "quiz_chat"),
    Shape("`prompt` + `answer` + `text`", "TRL stops", "a `prompt` with no `completion` raises KeyError: sftviz shows "
          "both fixes", "quiz_prompt_answer_text"),
    Shape("`question` + `answer` (your own)", "TRL cannot read it", "map the columns to prompt/completion first "
          "(a template)", "quiz_question_answer"),
)


def shapes_table():
    """Markdown: data shape -> what TRL trains by default, each row linked to its sample."""
    rows = "".join(f"| {s.columns} | **{s.trains}**: {s.why} | [{s.sample}](?sample={s.sample}) |\n" for s in SHAPES)
    return (f"| Your data's columns | What TRL {TRL_VERSION} trains by default | See it |\n|---|---|---|\n{rows}"
            "\nA link opens the sample in this page with TRL's default mode.")


EXPLAIN_PACKING = ("**Packing** fills each row with several examples (documents) to avoid padding. " + " ".join(
    f"`{s.name}`: {s.description}{' (padding-free: position ids restart at every document)' if s.padding_free else ''}."
    for s in STRATEGIES.values()))

PACKING_OFF = "<p>Turn packing on to see packed rows.</p>"


@dataclass(frozen=True)
class Tab:
    title: str
    elem_id: str  # the component's id on the page (and the key of its value in the handlers' results)
    render: object  # (view, i) -> HTML
    explain: str = ""  # Markdown under the view
    initial: str = ""  # HTML before the first view


EXAMPLE_TABS = [
    Tab("Tokens", "token-view", tokens_tab, EXPLAIN_LABELS),
    Tab("Shift", "shift-view", shift_tab, EXPLAIN_SHIFT),
    Tab("Compare modes", "mode-compare", compare_tab),
    Tab("Packing", "packing-view", packing_tab, EXPLAIN_PACKING, PACKING_OFF),
]


def stops_finding(refused):
    """The doctor's finding for a file TRL stops on: the reason, and the fixes over its own columns."""
    raw = refused.first_row
    return doctor.stops_finding(refused.reason, [data.fix_words(fix, raw, refused.request.options.text_field)
                                                 for fix in refused.fixes], refused.n)


def refused_views(refused, i):
    """Where TRL stops: the Tokens tab shows each fix's labels for example i, one under the other."""
    parts = []
    raw = refused.first_row
    for k, (fix, v) in enumerate(refused.fixes.items(), 1):
        parts.append(render.fix_head(f"Fix {k}: {data.fix_words(fix, raw, refused.request.options.text_field)}")
                     + tokens_tab(v, i))
    other = render.error_html("TRL stops on this file as it is: the Tokens tab shows what each fix trains. "
                              "Choose a fix under 'How to read your columns' to see it here.")
    return {tab.elem_id: "".join(parts) if tab.render is tokens_tab else other for tab in EXAMPLE_TABS}


def example_views(view, i, marked=()):
    """{elem_id: HTML} of every per-example view for example (or packed row) i; `marked` token positions
    are outlined (the tokens a doctor finding points at)."""
    i = max(0, min(int(i), view.n - 1))
    if isinstance(view, Refused):
        return refused_views(view, i)
    view.marked = tuple(marked)
    return {tab.elem_id: tab.render(view, i) for tab in EXAMPLE_TABS}


def findings(view):
    """The doctor's findings for this view's data and options: computed in the work budget, cached."""
    return _stats.get((view.loaded.key, view.options, "doctor"), lambda: bounded.run(
        doctor.diagnose, view.loaded.rows, view.loaded.tok, view.options,
        what=f"checking {os.path.basename(view.loaded.source)}"))


def migration(view):
    """Under another trainer's rules, the TRL 1.16 settings closest to its labels (export.migration): computed in
    the work budget and cached, as the doctor's findings are."""
    return _stats.get((view.loaded.key, view.options, "migration"), lambda: bounded.run(
        export.migration, view.loaded.rows, view.loaded.tok, view.options,
        what=f"comparing {os.path.basename(view.loaded.source)} with TRL 1.16"))


def covers_all(view):
    """Whether the page holds every row of the dataset (else the full doctor pass reads the rest)."""
    return len(view.loaded.rows) < MAX_ROWS


def full_check(request, view):
    """The doctor over every row of the dataset, in the background: a jobs.Watch whose updates are
    {"total": rows or None} then {"rows": rows checked so far}, and whose result is (findings, rows,
    dataset statistics: doctor.Scan.stats).
    Shared: everyone looking at the same data and options watches one pass, computed once and kept."""
    key = ("doctor", view.loaded.key, view.options)
    return jobs.POOL.watch(key, _full_pass, request, view.loaded.tok, seconds=FULL_SECONDS,
                           what=f"checking every row of {request.name}", tag=request.source)


def _full_pass(request, tok, emit):  # in the job's child process
    emit({"total": data.count_rows(request.data_source)})
    sc, first = doctor.scan_file(request.data_source, tok, request.options, FULL_CHUNK, workers=1,
                                 progress=lambda done: emit({"rows": done}), limit=FULL_ROWS)
    return doctor.report(sc, first, tok, request.options), sc.n, sc.stats(request.options)


def search(view, query, start):
    """Index of the next example (after `start`, wrapping) whose source text contains `query`."""
    q = (query or "").strip().lower()
    if isinstance(view, Refused):  # search the rows as the first fix reads them (the same examples)
        view = next(iter(view.fixes.values()), None)
    if not q or view is None:
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
    """Dataset-level numbers and figures: roles per mode, zero-trained examples, lengths vs max_length
    (computed once per data and options: a mode switch in a class is then a cache hit)."""
    return _stats.get((view.loaded.key, view.options), lambda: (_compute_stats(view), 50_000))


def _compute_stats(view):
    loaded, opts = view.loaded, view.options
    per_mode = {}
    shown = MODES[opts.mode].label if opts.rules == "trl" else RULES[opts.rules].label  # the bar of these options
    runs = [(MODES[m].label, Options(m, opts.max_length, opts.packing, opts.packing_strategy, opts.text_field))
            for m in dict.fromkeys([opts.mode, *compare_modes(loaded.rows)])]
    if opts.rules != "trl":
        runs = [(shown, opts)] + runs[1:]
    for label, options in runs:
        try:
            p = prepared(loaded, options)
        except TRLRefusal:
            continue
        kept = [c for c, dropped in zip(p.sequences.counts, p.sequences.dropped) if not dropped]
        per_mode[label] = {"target": sum(c["target"] for c in kept), "context": sum(c["context"] for c in kept),
                           "dropped": sum(p.sequences.dropped)}
    if opts.packing:
        lengths = view.prep.sequences.lengths
    else:  # the lengths before truncation: the same data without max_length
        untruncated = Options(opts.mode, None, text_field=opts.text_field)
        lengths = prepared(loaded, untruncated).sequences.lengths
    cut = sum(n > opts.max_length for n in lengths) if opts.max_length else 0
    cur = per_mode.get(shown, {"target": 0, "context": 0, "dropped": 0})
    first = f" (the first {MAX_ROWS:,} rows; every row is being checked in the background)" \
        if not covers_all(view) else ""
    md = stats_md(len(loaded.rows), cur["target"], cur["context"], cur["dropped"], cut, first)
    return md, plots.roles_figure(per_mode), plots.length_figure(Counter(lengths), opts.max_length)


def stats_md(examples, target, context, dropped, cut, note=""):
    total = target + context
    return (f"**{examples:,}** examples{note} · **{total:,}** tokens kept · **{target:,}** target / "
            f"**{context:,}** context ({100 * target / max(total, 1):.0f}% trained) · "
            f"**{dropped:,}** examples with zero trained tokens (dropped by TRL) · {cut:,} longer than max_length.")


def full_stats(stats, options):
    """(Markdown, length figure) of the statistics of every row (from the full doctor pass)."""
    md = stats_md(stats["examples"], stats["target"], stats["context"], stats["dropped"], stats["cut"],
                  " (every row)")
    return md, plots.length_figure(Counter(stats["lengths"]), None if options.packing else options.max_length)
