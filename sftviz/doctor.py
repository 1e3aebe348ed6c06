"""The SFT doctor: every example of a dataset checked against the traps that make a fine-tune misbehave
(NaN or 0.0 loss, a model that never stops, an answer-only run that "does nothing"), with the exact
examples and token positions, and the fix.

`diagnose(rows, tokenizer, options)` labels the rows as TRL would (labels.prepare) and once more without
truncation (to see what max_length cuts), then runs each check over every example. A Finding says which
check, how bad (error: training will go wrong; warning: probably not what you want; info: worth knowing),
how many examples, the first few with the token positions involved, and what to do.
"""

import os
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field, replace

from . import doctor_markers
from .jobs import usable_cpus
from .labels import IGNORE, MODES, ROW_TYPES, STOP_TOKEN_WARNING, TRLRefusal, prepare, row_type
from .packing import STRATEGIES

SEVERITIES = ("error", "warning", "info")
BATCH = 8  # SFTConfig.per_device_train_batch_size default
SHOWN = 5  # examples kept per finding
SMALL_FRACTION = 0.10  # under this share of tokens trained, the answer is a small part of what the model reads
SHARED_PREFIX = 16  # tokens every example starts with before it counts as a long identical prefix


@dataclass
class Finding:
    check: str  # a stable id, e.g. "answers_cut"
    severity: str  # error | warning | info
    title: str
    count: int  # examples (or rows) concerned
    total: int
    explanation: str
    fix: str
    examples: list = field(default_factory=list)  # [{"index": i, "positions": [t, ...], "note"?}], the first SHOWN

    @property
    def percent(self):
        return 100 * self.count / self.total if self.total else 0.0

    def to_dict(self):
        return {**asdict(self), "percent": round(self.percent, 2)}


class _Tally:
    """Examples that fail one check: how many, and the first few with their positions."""

    def __init__(self):
        self.count, self.examples = 0, []

    def add(self, index, positions=(), note=""):
        """Count an example; keep it (its positions: a list, or a function that finds them) if among the first."""
        self.count += 1
        if len(self.examples) < SHOWN:
            positions = positions() if callable(positions) else positions
            self.examples.append({"index": index, "positions": list(positions), **({"note": note} if note else {})})

    def merge(self, other):
        """Add a later chunk's tally (its examples come after these)."""
        self.count += other.count
        self.examples += other.examples[:SHOWN - len(self.examples)]


@dataclass(frozen=True)
class Detector:
    """One per-example test, written beside the report that reads its tally. `test(example, env)` returns
    None when the example is fine, else the token positions involved (a list, possibly empty, or a function
    that finds them: called only for the examples a finding shows) or (positions, note). `reads` says which
    labelling of the example it looks at:
    - "untruncated": every example as tokenized, before max_length cuts it;
    - "kept": the examples TRL keeps, as trained (truncated); not under packing, where rows mix examples."""

    tally: str
    reads: str
    test: object


@dataclass
class Env:
    """What the detectors read besides the example: the tokenizer's special ids, the options, the first row's shape."""

    eos: int | None
    bos: int | None
    pad: int | None
    special: set  # added and special token ids (an end-of-turn counts as a stop)
    options: object
    first_shape: str
    tok: object = None  # for the rare detector that needs to tokenize (only for an example it flags)


@dataclass
class Scan:
    """What the checks need from a run of examples; scans of consecutive chunks merge into one."""

    n: int = 0
    tallies: dict = field(default_factory=lambda: defaultdict(_Tally))  # tally name -> _Tally (see DETECTORS)
    lengths: Counter = field(default_factory=Counter)  # untruncated length -> examples
    target: int = 0  # tokens trained / read, over kept examples
    real: int = 0
    prefix: list | None = None  # the tokens every example so far starts with
    seam_tokens: list | None = None  # the first seam's merged prompt tokens
    warnings: set = field(default_factory=set)
    chat_template: bool = False  # TRL swapped in its training template
    assistant_only_loss: bool = False
    first_length: int = 0  # tokens in the dataset's first example
    unmatched: list = field(default_factory=list)  # ids of the first examples where no response marker matched

    def stats(self, options):
        """The dataset statistics of every row scanned: examples, target / context tokens kept, examples TRL
        drops, examples longer than max_length, and the untruncated lengths (length -> examples)."""
        cut = sum(k for length, k in self.lengths.items() if options.max_length and length > options.max_length)
        return {"examples": self.n, "target": self.target, "context": self.real - self.target,
                "dropped": self.tallies["dropped"].count, "cut": cut, "lengths": dict(self.lengths)}

    def merge(self, other):
        for name, tally in other.tallies.items():
            self.tallies[name].merge(tally)
        self.lengths.update(other.lengths)
        self.n, self.target, self.real = self.n + other.n, self.target + other.target, self.real + other.real
        self.prefix = other.prefix if self.prefix is None else _common(self.prefix, other.prefix or [])
        self.seam_tokens = self.seam_tokens or other.seam_tokens
        self.warnings |= other.warnings
        self.chat_template |= other.chat_template
        self.assistant_only_loss |= other.assistant_only_loss
        self.first_length = self.first_length or other.first_length
        self.unmatched = (self.unmatched + other.unmatched)[:doctor_markers.KEPT_IDS]
        return self


def scan(rows, tok, options, offset=0, first_shape=None):
    """Label `rows` as TRL would (with and without truncation) and note what every check needs.
    `offset` is the index of rows[0] in the dataset; `first_shape` the dataset's first row's shape."""
    cache = {}  # one tokenization for both preparations
    prep = labelled(rows, tok, options, cache)
    untruncated = prep if options.max_length is None and not options.packing else \
        labelled(rows, tok, replace(options, max_length=None, packing=False), cache)
    full = untruncated.sequences
    out = Scan(n=len(rows), warnings=set(prep.warnings), chat_template=prep.chat_template is not None,
               assistant_only_loss=prep.assistant_only_loss, first_length=len(full[0].input_ids) if offset == 0 else 0)
    t = out.tallies
    env = Env(tok.eos_token_id, tok.bos_token_id, tok.pad_token_id,
              set(tok.get_added_vocab().values()) | set(tok.all_special_ids), options,
              first_shape or _shape(rows[0]), tok)
    per_example = not options.packing  # packed rows mix examples: the "kept" detectors read unpacked ones
    on_full = [d for d in DETECTORS if d.reads == "untruncated"]
    on_kept = [d for d in DETECTORS if d.reads == "kept"] if per_example else []
    for k, s in enumerate(full):
        out.lengths[len(s.input_ids)] += 1
        out.prefix = list(s.input_ids) if out.prefix is None else _common(out.prefix, s.input_ids)
        _detect(on_full, (s, rows[k]), env, t, offset + k)
    for k, s in enumerate(prep.sequences):
        if s.dropped:  # TRL filters it out: no label left after truncation
            t["dropped"].add(offset + k)
            continue
        counts = s.role_counts()
        out.target, out.real = out.target + counts["target"], out.real + counts["target"] + counts["context"]
        if on_kept:
            _detect(on_kept, (s, rows[k]), env, t, offset + k)
    for k, s in enumerate(prep.sequences if prep.marks else ()):  # another trainer's marker search
        doctor_markers.note(s, offset + k, env, t, out, prep.pad_token_id)
    for k, (position, left_out) in sorted(prep.seams.items()):
        t["seam"].add(offset + k, [position])
        out.seam_tokens = out.seam_tokens or tok.convert_ids_to_tokens(left_out)
    return out


def labelled(rows, tok, options, cache):
    """labels.prepare, except that where a trainer refuses because it masked every row (Unsloth), the doctor
    reads what it masked, to say why."""
    try:
        return prepare(rows, tok, options, cache=cache)
    except TRLRefusal as e:
        if getattr(e, "prepared", None) is None:
            raise
        return e.prepared


def _detect(detectors, example, env, tallies, index):
    """Run each detector on one example (a (Sequence, row) pair) and count it in the tally of those that fire."""
    for d in detectors:
        hit = d.test(example, env)
        if hit is not None:
            positions, note = hit if isinstance(hit, tuple) else (hit, "")
            tallies[d.tally].add(index, positions, note)


def diagnose(rows, tok, options):
    """Findings for these rows (all in memory), errors first."""
    return report(scan(rows, tok, options), rows[0], tok, options)


def diagnose_file(source, tok, options, chunk_rows=10_000, workers=None, progress=None, limit=None):
    """Findings for every row (at most `limit`) of a data.Source (or a file name), streamed in chunks of
    `chunk_rows` and checked by `workers` processes (default: one per core): memory stays flat however many
    rows there are. `progress(rows_done)` is called after each chunk. Returns (findings, rows checked)."""
    sc, first_row = scan_file(source, tok, options, chunk_rows, workers, progress, limit)
    return report(sc, first_row, tok, options), sc.n


def scan_file(source, tok, options, chunk_rows=10_000, workers=None, progress=None, limit=None):
    """The Scan of every row (see diagnose_file), and the dataset's first row."""
    import multiprocessing

    from . import data

    chunks = (chunk.rows for chunk in data.iter_chunks(source, chunk_rows, limit))
    first = next(chunks)  # iter_chunks raises DataError on a dataset with no rows
    first_shape = _shape(first[0])
    total = scan(first, tok, options, 0, first_shape)
    if progress:
        progress(total.n)
    workers = workers or usable_cpus()
    offsets = _offsets(chunks, total.n)
    if workers > 1 and hasattr(os, "fork"):
        # forked workers inherit the tokenizer and options as initializer arguments (never pickled per chunk)
        with multiprocessing.get_context("fork").Pool(workers, _start_worker, (tok, options, first_shape)) as pool:
            pending = deque()  # at most two chunks per worker in flight: memory does not grow with the rows

            def merge_oldest():
                total.merge(pending.popleft().get())
                if progress:
                    progress(total.n)

            for item in offsets:
                pending.append(pool.apply_async(_scan_chunk, (item,)))
                if len(pending) >= 2 * workers:
                    merge_oldest()
            while pending:
                merge_oldest()
    else:
        for offset, rows in offsets:
            total.merge(scan(rows, tok, options, offset, first_shape))
            if progress:
                progress(total.n)
    return total, first[0]


_WORKER = {}  # in a worker process: what its chunks are scanned with (set once by _start_worker)


def _start_worker(tok, options, first_shape):
    _WORKER.update(tok=tok, options=options, first_shape=first_shape)


def _offsets(chunks, start):
    for rows in chunks:
        yield start, rows
        start += len(rows)


def _scan_chunk(item):
    offset, rows = item
    return scan(rows, _WORKER["tok"], _WORKER["options"], offset, _WORKER["first_shape"])


@dataclass
class Context:
    """What every check's report reads: the scan of every example, the dataset's first row, the tokenizer and
    the options."""

    sc: Scan
    first_row: dict
    tok: object
    options: object

    @property
    def n(self):
        return self.sc.n

    def found(self, check, severity, title, tally, explanation, fix):
        """[the Finding] when `tally` counted examples, else []."""
        return [Finding(check, severity, title, tally.count, self.n, explanation, fix, tally.examples)] \
            if tally.count else []

    def every(self, check, severity, title, explanation, fix, examples=()):
        """[a Finding about the whole dataset]."""
        return [Finding(check, severity, title, self.n, self.n, explanation, fix, list(examples))]


def nothing_scored(example, env):
    """(kept) An example TRL keeps with no scored token: it adds nothing but can make a batch all -100."""
    return [] if example[0].num_scored == 0 else None


def no_target(c):
    """No target left: TRL drops the example after truncation, or keeps it with nothing to learn."""
    t, n, o = c.sc.tallies, c.n, c.options
    dropped, empty = t["dropped"].count, t["empty"].count
    if o.rules != "trl":  # another trainer's marker search left them with no label
        cut = f", or max_length {o.max_length} cut it off" if o.max_length else ""
        return c.found("no_target", "error" if dropped == n else "warning", "Examples with no target left: Unsloth "
                       "drops them", t["dropped"], f"No response marker matched in these examples (see that finding)"
                       f"{cut}: Unsloth removes them"
                       + (", and raises when it is every row." if dropped == n else "."),
                       "Fix the marker (see the marker finding), or raise max_length.") + \
            c.found("no_target_kept", "error" if empty == n else "warning",
                    "Examples with no scored token, kept by the collator", t["empty"],
                    "No label is left in these examples (a marker did not match, or max_length cut the answer), but "
                    "DataCollatorForCompletionOnlyLM keeps them: a batch of them has a loss of NaN.",
                    "Fix the marker (see the marker finding), or raise max_length.")
    out = c.found("no_target", "error" if dropped == n else "warning", "Examples with no target left: TRL drops them",
                  t["dropped"], f"After truncation to max_length {o.max_length} these examples have no label at all "
                  f"(the prompt fills the window), so TRL filters them out"
                  + (": nothing is left to train on." if dropped == n else "."),
                  "Raise max_length (see the length finding), shorten the prompts, or train on the whole text.")
    if empty:
        p = empty / n
        batches = n / BATCH * p ** BATCH
        out += c.found("no_target_kept", "error" if p == 1 or batches >= 1 else "warning",
                       "Examples with no scored token, kept by TRL", t["empty"],
                       f"These examples carry no loss (max_length is {o.max_length}, so TRL does not filter them). "
                       f"With batches of {BATCH} drawn at random, about {batches:.1f} batch(es) per epoch would be "
                       f"entirely -100: a loss of NaN (or 0.0) for that step.",
                       "Set max_length so that TRL filters them, or fix the data so every example has an answer.")
    return out


def answer_cut(example, env):
    """(untruncated) Answer tokens past max_length: the positions of the cut, and how many are lost."""
    s, m = example[0], env.options.max_length
    if m is None or env.options.packing or len(s.labels) <= m:
        return None
    lost = len(s.labels) - m - s.labels[m:].count(IGNORE)
    return ([m - 1], f"cut after position {m - 1}: {lost} answer token(s) lost") if lost else None


def answers_cut(c):
    """Answers cut by max_length, and their EOS with them."""
    cut = c.sc.tallies["cut"]
    if not cut.count:
        return []
    suggested, cost = suggest_max_length(c.sc.lengths, c.options.max_length)
    return c.found("answers_cut", "error" if cut.count == c.n else "warning",
                   f"Answers cut by max_length {c.options.max_length}", cut,
                   "TRL keeps the start of each example: the end of these answers, and their EOS, are never trained "
                   "(the model learns to stop mid-answer, or not at all).",
                   f"max_length {suggested} keeps 99% of examples whole ({cost}).")


def no_stop(example, env):
    """(kept) None of the last 3 trained tokens is the EOS or a special token (an end-of-turn): their positions."""
    s = example[0]
    last = last_targets(s.labels, 3)
    if last and not any(s.input_ids[p] == env.eos or s.input_ids[p] in env.special for p in last):
        return last
    return None


def never_stops(c):
    """EOS / end-of-turn never a target (or the EOS split into plain tokens): the model never learns to stop."""
    tok = c.tok
    if c.options.rules != "trl":  # their own EOS handling (Unsloth appends none to text)
        return c.found("no_stop_token", "error" if c.sc.tallies["no_stop"].count == c.n else "warning",
                       "The answer's end (EOS / end-of-turn) is never a target", c.sc.tallies["no_stop"],
                       "The last trained tokens of these examples are plain text: nothing teaches the model to stop"
                       + (" (Unsloth appends no EOS to text; its span includes an EOS only where the text has one)."
                          if c.options.rules == "unsloth" else "."),
                       f"End each answer with the EOS {tok.eos_token!r} (or an end-of-turn token) in the data.")
    probe = tok("x" + tok.eos_token, add_special_tokens=False)["input_ids"]
    if not c.options.packing and not row_type(c.first_row).startswith("conversational") \
            and probe[-1:] != [tok.eos_token_id]:
        pieces = len(probe) - 1
        return c.every("eos_split", "error", f"The EOS {tok.eos_token!r} is split into plain tokens",
                       f"TRL appends the EOS as text; after a word this tokenizer reads {tok.eos_token!r} as "
                       f"{pieces} ordinary tokens, so the EOS id is never in the data: the model cannot learn to stop.",
                       "Use a tokenizer whose EOS is a special token that is not split (e.g. mark it special, not "
                       "single_word), or set SFTConfig(eos_token=...) to one that is.",
                       [{"index": 0, "positions": list(range(c.sc.first_length - pieces, c.sc.first_length)),
                         "note": f"the last {pieces} tokens: the EOS as plain text"}])
    no_stop = c.sc.tallies["no_stop"]
    return c.found("no_stop_token", "error" if no_stop.count == c.n else "warning",
                   "The answer's end (EOS / end-of-turn) is never a target", no_stop,
                   "The last trained tokens of these examples are plain text: nothing teaches the model to stop.",
                   "Keep the EOS in the completion (do not strip it), or make the chat template put the "
                   "end-of-turn token inside {% generation %}.")


def chat_template(c):
    """assistant_only_loss with a template without {% generation %}: what TRL does instead."""
    out = []
    if c.sc.assistant_only_loss and c.sc.chat_template:
        out += c.every("training_template", "info", "TRL swaps in its own training chat template",
                       "This tokenizer's chat template has no {% generation %} tags. TRL 1.16 knows this model's "
                       "template and uses its training version, which marks the assistant's text (and end-of-turn): "
                       "the labels shown are made with it.", "Nothing to do with TRL 1.16; with another trainer, use "
                       "a template with {% generation %} tags.")
    for w in sorted(c.sc.warnings):
        if w == STOP_TOKEN_WARNING:
            out += c.every("stop_token_template", "warning", "The template gives end-of-turn to the next message",
                           w, "Edit the template so the end-of-turn token is inside "
                           "{% generation %}...{% endgeneration %}.")
    return out


def double_bos(example, env):
    """(untruncated) BOS at positions 0 and 1."""
    ids = example[0].input_ids
    return [0, 1] if env.bos is not None and ids[:2] == [env.bos, env.bos] else None


def double_eos(example, env):
    """(untruncated) EOS at the last two positions (when it is not also the padding)."""
    ids = example[0].input_ids
    return [len(ids) - 2, len(ids) - 1] if len(ids) > 1 and ids[-2:] == [env.eos, env.eos] \
        and env.eos != env.pad else None


def doubled(c):
    """BOS twice at the start, EOS twice at the end."""
    t = c.sc.tallies
    return (c.found("double_bos", "warning", "BOS twice at the start", t["double_bos"],
                    "The text (or the chat template) already starts with BOS and the tokenizer adds another.",
                    "Remove the BOS from the text, or let only one of template / tokenizer add it.")
            + c.found("double_eos", "warning", "EOS twice at the end", t["double_eos"],
                      "The text already ends with an EOS token and another is added (by the tokenizer or the "
                      "template).", "Remove the EOS from the data, or let only one side add it."))


def seam(c):
    """The prompt's tokens are not a prefix of prompt+completion's: the merged token is trained."""
    return c.found("prompt_seam", "warning", "The prompt's last tokens merge with the completion",
                   c.sc.tallies["seam"],
                   f"Tokenized alone, the prompt ends in {c.sc.seam_tokens!r}; tokenized with its completion those "
                   f"characters join the completion's first token (e.g. a prompt ending in a space). TRL then counts "
                   f"the merged token as completion: it is trained, and the prompt the model sees at inference "
                   f"differs.", "End the prompt on a token boundary: move the trailing space to the start of the "
                   "completion.")


def _texts(row):
    """(prompt, completion) of a prompt-completion row of text, else (None, None)."""
    p, c = row.get("prompt"), row.get("completion")
    return (p, c) if isinstance(p, str) and isinstance(c, str) and p and c else (None, None)


def _completion_start(prompt, env):
    """The position of the completion's first token: after the prompt's tokens (as TRL tokenizes it alone).
    A function: the tally calls it only for the examples it keeps (the prompt is tokenized again)."""
    return lambda: [len(env.tok(prompt)["input_ids"])]


def glued_text(p, c):
    """Whether a prompt and a completion meet with no whitespace ("France?" + "Paris."), unless the prompt ends in
    a marker such as "<|assistant|>"."""
    return not (p[-1].isspace() or c[0].isspace() or p.endswith(">"))


def repeats_text(p, c):
    """Whether the prompt ends with the completion, or the completion starts with the prompt."""
    return (p.rstrip().endswith(c.strip()) or c.lstrip().startswith(p.strip())) and \
        min(len(p.strip()), len(c.strip())) >= 2


def glued(example, env):
    """(untruncated) glued_text, pointing at the completion's first token."""
    p, c = _texts(example[1])
    return _completion_start(p, env) if p is not None and glued_text(p, c) else None


def repeated(example, env):
    """(untruncated) repeats_text, pointing at the completion's first token."""
    p, c = _texts(example[1])
    return _completion_start(p, env) if p is not None and repeats_text(p, c) else None


def joins(c):
    """How prompt and completion meet: glued together, or one repeating the other."""
    t = c.sc.tallies
    return (c.found("prompt_completion_glued", "warning", "Prompt and completion join with no space or separator",
                    t["glued"], "TRL trains on prompt + completion exactly as given: \"France?\" + \"Paris.\" is "
                    "read as \"France?Paris.\", so the model learns answers glued to their question (and the last "
                    "word of a prompt can merge with the first of its answer into one token).",
                    "End the prompt with a separator (a newline, \"Answer:\") or start the completion with a space; "
                    "a mapping template can add it.")
            + c.found("prompt_completion_repeat", "warning", "The completion repeats the prompt, or the prompt the "
                      "completion", t["repeat"], "The answer is in the prompt already (or the completion restarts "
                      "with the prompt): the model is trained to copy what it was just given, not to answer.",
                      "Check the mapping templates: the answer belongs in the completion only, the question in the "
                      "prompt only."))


def crossing_packing(c):
    """Packing that lets documents see each other (not padding-free: TRL's "wrapped")."""
    o = c.options
    if not o.packing or STRATEGIES[o.packing_strategy].padding_free:
        return []
    return c.every("wrapped_packing", "warning", f"{o.packing_strategy} packing: documents see each other",
                   "Rows are cut every max_length tokens across documents: a document attends to the previous ones, "
                   "and its first token is trained as the continuation of another document.",
                   "Use packing_strategy='bfd' (padding-free: position ids restart, nothing crosses a boundary).")


def no_split(c):
    """completion_only_loss where it does nothing; plain text, where any prompt inside is trained."""
    kind = row_type(c.first_row)
    if MODES[c.options.mode].completion_only_loss and not kind.endswith("prompt_completion"):
        return c.every("completion_only_noop", "warning", "completion_only_loss does nothing on this data",
                       "There is no prompt/completion split in " + ("chats" if kind == "conversational"
                                                                    else "plain text")
                       + ": TRL silently trains on every token.",
                       "For chats use assistant_only_loss=True; for text, map it to prompt/completion with a template.")
    if kind == "language_modeling":
        return c.every("text_trains_prompt", "info", "Plain text: any prompt inside it is trained",
                       "Language-modeling text has no prompt/completion split: every token is a target.",
                       "If the text is prompt + answer, map it to prompt/completion (the template editor) to train "
                       "the answers only.")
    return []


def signal(c):
    """A small trained fraction; a long prefix shared by every example."""
    sc, out = c.sc, []
    if sc.real and sc.target / sc.real < SMALL_FRACTION:
        out += c.every("small_trained_fraction", "info", f"Only {100 * sc.target / sc.real:.1f}% of tokens are "
                       "trained", "Most of what the model reads is context: a normal shape for short answers to long "
                       "prompts, but each step then learns from few tokens (a noisier loss).",
                       "Expected for short answers; for a larger signal use bigger batches, or the prompt-loss-weight "
                       "idea.")
    shared = len(sc.prefix or [])
    if c.n > 1 and shared >= SHARED_PREFIX:
        out += c.every("shared_prefix", "info", f"Every example starts with the same {shared} tokens",
                       "A long identical start (often a default system prompt the chat template inserts) is read in "
                       "every example; in whole-text mode it is also trained on every time.",
                       "Check it is intended; in answer-only or assistant-only mode it costs compute, not learning.",
                       [{"index": 0, "positions": list(range(shared))}])
    return out


def odd_shape(example, env):
    """(untruncated) A row of another type than the first row."""
    return [] if _shape(example[1]) != env.first_shape else None


def mixed_shapes(c):
    """Rows of different shapes (TRL decides several things from the first row alone)."""
    return c.found("mixed_shapes", "warning", "Rows of different shapes", c.sc.tallies["odd_shape"],
                   f"The first row is {_shape(c.first_row)}; TRL decides EOS handling and completion_only_loss from "
                   f"the first row alone, so rows of another shape are prepared with the wrong rules.",
                   "Make every row the same shape (one mapping template for all).")


def columns(c):
    """Columns TRL ignores, or that change its path."""
    return column_findings(c.first_row, c.n, c.options.text_field)


# The per-example tests: scan() runs each on every example and keeps its tally, which the reports read.
DETECTORS = (Detector("empty", "kept", nothing_scored), Detector("cut", "untruncated", answer_cut),
             Detector("no_stop", "kept", no_stop), Detector("double_bos", "untruncated", double_bos),
             Detector("double_eos", "untruncated", double_eos), Detector("odd_shape", "untruncated", odd_shape),
             Detector("glued", "untruncated", glued), Detector("repeat", "untruncated", repeated))
# Besides the detectors' tallies, scan() keeps two from the labelling itself: "dropped" (TRL's filter) and "seam".

# The doctor's checks, in the order the page lists findings of the same severity: each reads the scan (and the
# tallies of its detectors) and returns its findings.
REPORTS = (no_target, answers_cut, never_stops, chat_template, doubled, seam, joins, crossing_packing, no_split, signal,
           mixed_shapes, columns) + doctor_markers.REPORTS


TRL_MODE_REPORTS = (chat_template, no_split, seam)  # about TRL 1.16's modes: not what a marker search does


def report(sc, first_row, tok, options):
    """The findings of a scan, errors first."""
    context = Context(sc, first_row, tok, options)
    checks = REPORTS if options.rules == "trl" else [r for r in REPORTS if r not in TRL_MODE_REPORTS]
    findings = [f for check in checks for f in check(context)]
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.count))


CONTENT_COLUMNS = ("prompt", "completion", "question", "answer", "instruction", "input", "output", "response",
                   "messages", "conversations", "text")


def column_findings(row, n, text_field="text"):
    """What TRL does with columns beside the ones it reads (the first row decides, as in TRL): a `text`
    beside prompt/completion takes the EOS away from the completion; other content columns are ignored."""
    from . import data
    from .data import mapping_shape, trl_reading

    kind, _ = trl_reading(row, text_field)
    read = {"language_modeling": {text_field}, "prompt_completion": {"prompt", "completion"},
            "conversational_prompt_completion": {"prompt", "completion"}, "conversational": {"messages"},
            "sharegpt": {"conversations"}}.get(kind)
    if read is None:  # TRL stops on the file (the page and the CLI say so), or it is mapped
        return []
    names = data.column_list
    out = []
    if kind == "prompt_completion" and isinstance(row.get(text_field), str):
        out.append(Finding(
            "columns", "warning", f"A `{text_field}` column beside prompt/completion takes the completion's EOS", n,
            n, f"TRL trains prompt + completion and never reads `{text_field}`, but it appends the EOS to "
            f"`{text_field}` (the text field comes first), so the completions end without EOS: the model does not "
            f"learn to stop.", f"Drop the `{text_field}` column (or set the text field to a column that is not "
            f"there)."))
    ignored = [c for c in row if c not in read and (c in CONTENT_COLUMNS or c == text_field)]
    if ignored and not out:
        path = {"language_modeling": f"the whole `{text_field}`, every token"}.get(kind, " + ".join(sorted(read)))
        fix = ("To train on the answer only, map the columns to prompt/completion (page: How to read your "
               "columns; CLI: --columns map)." if kind == "language_modeling" and mapping_shape(row) else
               "Nothing to do if that is what you want; drop the columns you do not use.")
        out.append(Finding(
            "columns", "info", f"TRL ignores {names(ignored)}", n, n,
            f"TRL reads {names(sorted(read))} and trains on {path}; {names(ignored)} never reach the model.", fix))
    return out


def stops_finding(reason, fixes, n):
    """TRL stops on the file as it is (a `prompt` column and no `completion`): the doctor's error for it.
    `fixes`: each fix in words."""
    return Finding("columns", "error", "TRL stops on this file: a `prompt` column and no `completion`", n, n, reason,
                   "; or ".join(fixes) + "." if fixes else "Rename the columns to prompt and completion.")


def suggest_max_length(lengths, current):
    """(a max_length that keeps 99% of examples whole, what it costs), in steps of 64 tokens.
    `lengths`: a Counter of untruncated length -> examples."""
    n, seen, p99 = sum(lengths.values()), 0, 0
    for length in sorted(lengths):
        seen += lengths[length]
        p99 = length
        if seen >= 0.99 * n:
            break
    suggested = max(64, -(-p99 // 64) * 64)
    extra = sum(count * (min(length, suggested) - min(length, current)) for length, count in lengths.items())
    return suggested, f"{extra:+,} tokens over the dataset, {extra / max(n, 1):+.0f} per example"


def last_targets(labels, k):
    """The last k positions (t >= 1) that have a label, in order: read from the end, so usually k steps."""
    found = []
    for p in range(len(labels) - 1, 0, -1):
        if labels[p] != IGNORE:
            found.append(p)
            if len(found) == k:
                break
    return found[::-1]


def _common(a, b):
    """The common start of two token lists."""
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return a[:k]


def _shape(row):
    return ROW_TYPES[row_type(row)]

