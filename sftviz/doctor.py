"""The SFT doctor: every example of a dataset checked against the traps that make a fine-tune misbehave
(NaN or 0.0 loss, a model that never stops, an answer-only run that "does nothing"), with the exact
examples and token positions, and the fix.

`diagnose(rows, tokenizer, options)` labels the rows as TRL would (labels.prepare) and once more without
truncation (to see what max_length cuts), then runs each check over every example. A Finding says which
check, how bad (error: training will go wrong; warning: probably not what you want; info: worth knowing),
how many examples, the first few with the token positions involved, and what to do.
"""

from dataclasses import asdict, dataclass, field, replace

from .labels import IGNORE, is_conversational, prepare

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
        self.count += 1
        if len(self.examples) < SHOWN:
            self.examples.append({"index": index, "positions": list(positions), **({"note": note} if note else {})})


def diagnose(rows, tok, options):
    """Findings for the whole dataset, errors first."""
    prep = prepare(rows, tok, options)
    untruncated = prep if options.max_length is None and not options.packing else \
        prepare(rows, tok, replace(options, max_length=None, packing=False))
    full = untruncated.sequences
    n = len(rows)
    findings = []

    def found(check, severity, title, tally, explanation, fix, total=n):
        if tally.count:
            findings.append(Finding(check, severity, title, tally.count, total, explanation, fix, tally.examples))

    # 1. No target left: TRL drops the example (after truncation), or keeps it with nothing to learn.
    dropped, empty = _Tally(), _Tally()
    if not options.packing:
        for i, s in enumerate(prep.sequences):
            if s.dropped:
                dropped.add(i)
            elif s.num_scored == 0:
                empty.add(i)
    if dropped.count:
        severity = "error" if dropped.count == n else "warning"
        found("no_target", severity, "Examples with no target left: TRL drops them", dropped,
              f"After truncation to max_length {options.max_length} these examples have no label at all "
              f"(the prompt fills the window), so TRL filters them out"
              + (": nothing is left to train on." if dropped.count == n else "."),
              "Raise max_length (see the length finding), shorten the prompts, or train on the whole text.")
    if empty.count:
        p = empty.count / n
        batches = n / BATCH * p ** BATCH
        found("no_target_kept", "error" if p == 1 or batches >= 1 else "warning",
              "Examples with no scored token, kept by TRL", empty,
              f"These examples carry no loss (max_length is {options.max_length}, so TRL does not filter them). "
              f"With batches of {BATCH} drawn at random, about {batches:.1f} batch(es) per epoch would be entirely "
              f"-100: a loss of NaN (or 0.0) for that step.",
              "Set max_length so that TRL filters them, or fix the data so every example has an answer.")

    # 2. Answers cut by max_length (and the EOS with them).
    if options.max_length is not None and not options.packing:
        cut, lengths = _Tally(), [len(s.input_ids) for s in full]
        for i, s in enumerate(full):
            if len(s.input_ids) > options.max_length:
                lost = sum(s.labels[t] != IGNORE for t in range(options.max_length, len(s.labels)))
                if lost:  # the cut: the last token TRL keeps
                    cut.add(i, [options.max_length - 1], f"cut after position {options.max_length - 1}: "
                                                          f"{lost} answer token(s) lost")
        if cut.count:
            suggested, cost = suggest_max_length(lengths, options.max_length)
            found("answers_cut", "error" if cut.count == n else "warning",
                  f"Answers cut by max_length {options.max_length}", cut,
                  "TRL keeps the start of each example: the end of these answers, and their EOS, are never trained "
                  "(the model learns to stop mid-answer, or not at all).",
                  f"max_length {suggested} keeps 99% of examples whole ({cost}).")

    # 3. EOS / end-of-turn never a target: the model never learns to stop.
    eos, added = tok.eos_token_id, set(tok.get_added_vocab().values()) | set(tok.all_special_ids)
    no_stop = _Tally()
    for i, s in enumerate(prep.sequences):
        if s.dropped or (options.packing and prep.padding_free):
            continue
        targets = [t for t in range(1, len(s.labels)) if s.labels[t] != IGNORE]
        if targets and not any(s.input_ids[t] == eos or s.input_ids[t] in added for t in targets[-3:]):
            no_stop.add(i, targets[-3:])
    if not options.packing:
        probe = tok("x" + tok.eos_token, add_special_tokens=False)["input_ids"]
        split_eos = not is_conversational(rows[0]) and probe[-1:] != [eos]
        if split_eos:
            pieces = len(probe) - 1
            shown = [{"index": i, "positions": list(range(len(s.input_ids) - pieces, len(s.input_ids)))}
                     for i, s in enumerate(full[:SHOWN])]
            findings.append(Finding(
                "eos_split", "error", f"The EOS {tok.eos_token!r} is split into plain tokens", n, n,
                f"TRL appends the EOS as text; after a word this tokenizer reads {tok.eos_token!r} as "
                f"{len(probe) - 1} ordinary tokens, so the EOS id is never in the data: the model cannot learn "
                f"to stop.", "Use a tokenizer whose EOS is a special token that is not split (e.g. mark it "
                "special, not single_word), or set SFTConfig(eos_token=...) to one that is.", shown))
        elif no_stop.count:
            found("no_stop_token", "error" if no_stop.count == n else "warning",
                  "The answer's end (EOS / end-of-turn) is never a target", no_stop,
                  "The last trained tokens of these examples are plain text: nothing teaches the model to stop.",
                  "Keep the EOS in the completion (do not strip it), or make the chat template put the "
                  "end-of-turn token inside {% generation %}.")

    # 4. assistant_only_loss with a template without {% generation %}: what TRL does instead.
    if prep.assistant_only_loss and prep.chat_template:
        findings.append(Finding(
            "training_template", "info", "TRL swaps in its own training chat template", n, n,
            "This tokenizer's chat template has no {% generation %} tags. TRL 1.16 knows this model's template "
            "and uses its training version, which marks the assistant's text (and end-of-turn): the labels "
            "shown are made with it.", "Nothing to do with TRL 1.16; with another trainer, use a template with "
            "{% generation %} tags."))
    for w in prep.warnings:
        if "end-of-turn token in the loss mask" in w:
            findings.append(Finding("stop_token_template", "warning", "The template gives end-of-turn to the next "
                                    "message", n, n, w, "Edit the template so the end-of-turn token is inside "
                                    "{% generation %}...{% endgeneration %}."))

    # 5. Doubled BOS / EOS.
    bos = tok.bos_token_id
    double_bos, double_eos = _Tally(), _Tally()
    for i, s in enumerate(full):
        ids = s.input_ids
        if bos is not None and ids[:2] == [bos, bos]:
            double_bos.add(i, [0, 1])
        if len(ids) > 1 and ids[-2:] == [eos, eos] and eos != tok.pad_token_id:
            double_eos.add(i, [len(ids) - 2, len(ids) - 1])
    found("double_bos", "warning", "BOS twice at the start", double_bos,
          "The text (or the chat template) already starts with BOS and the tokenizer adds another.",
          "Remove the BOS from the text, or let only one of template / tokenizer add it.")
    found("double_eos", "warning", "EOS twice at the end", double_eos,
          "The text already ends with an EOS token and another is added (by the tokenizer or the template).",
          "Remove the EOS from the data, or let only one side add it.")

    # 6. The prompt/completion seam: the prompt's tokens are not a prefix of prompt+completion's.
    if prep.seams:
        seam = _Tally()
        for i, (k, _) in sorted(prep.seams.items()):
            seam.add(i, [k])
        example = min(prep.seams)
        tokens = tok.convert_ids_to_tokens(prep.seams[example][1])
        found("prompt_seam", "warning", "The prompt's last tokens merge with the completion", seam,
              f"Tokenized alone, the prompt ends in {tokens!r}; tokenized with its completion those characters "
              f"join the completion's first token (e.g. a prompt ending in a space). TRL then counts the merged "
              f"token as completion: it is trained, and the prompt the model sees at inference differs.",
              "End the prompt on a token boundary: move the trailing space to the start of the completion.")

    # 7. wrapped packing.
    if options.packing and options.packing_strategy == "wrapped":
        findings.append(Finding(
            "wrapped_packing", "warning", "wrapped packing: documents see each other", n, n,
            "Rows are cut every max_length tokens across documents: a document attends to the previous ones, "
            "and its first token is trained as the continuation of another document.",
            "Use packing_strategy='bfd' (padding-free: position ids restart, nothing crosses a boundary)."))

    # 8. completion_only_loss where it does nothing; text where the prompt is necessarily trained.
    first = rows[0]
    if options.mode == "completion" and "prompt" not in first:
        findings.append(Finding(
            "completion_only_noop", "warning", "completion_only_loss does nothing on this data", n, n,
            "There is no prompt/completion split in " + ("chats" if is_conversational(first) else "plain text") +
            ": TRL silently trains on every token.",
            "For chats use assistant_only_loss=True; for text, map it to prompt/completion with a template."))
    elif not is_conversational(first) and "prompt" not in first:
        findings.append(Finding(
            "text_trains_prompt", "info", "Plain text: any prompt inside it is trained", n, n,
            "Language-modeling text has no prompt/completion split: every token is a target.",
            "If the text is prompt + answer, map it to prompt/completion (the template editor) to train the "
            "answers only."))

    # 9. A small trained fraction; a long prefix shared by every example.
    kept = [s for s in prep.sequences if not s.dropped]
    target = sum(s.role_counts()["target"] for s in kept)
    real = sum(s.role_counts()["target"] + s.role_counts()["context"] for s in kept)
    if real and target / real < SMALL_FRACTION:
        findings.append(Finding(
            "small_trained_fraction", "info", f"Only {100 * target / real:.1f}% of tokens are trained", n, n,
            "Most of what the model reads is context: a normal shape for short answers to long prompts, but each "
            "step then learns from few tokens (a noisier loss).",
            "Expected for short answers; for a larger signal use bigger batches, or the prompt-loss-weight idea."))
    shared = _shared_prefix([s.input_ids for s in full])
    if n > 1 and shared >= SHARED_PREFIX:
        findings.append(Finding(
            "shared_prefix", "info", f"Every example starts with the same {shared} tokens", n, n,
            "A long identical start (often a default system prompt the chat template inserts) is read in every "
            "example; in whole-text mode it is also trained on every time.",
            "Check it is intended; in answer-only or assistant-only mode it costs compute, not learning.",
            [{"index": 0, "positions": list(range(shared))}]))

    # 10. Rows of different shapes (TRL decides several things from the first row alone).
    odd, shape = _Tally(), _shape(first)
    for i, r in enumerate(rows):
        if _shape(r) != shape:
            odd.add(i)
    found("mixed_shapes", "warning", "Rows of different shapes", odd,
          f"The first row is {shape}; TRL decides EOS handling and completion_only_loss from the first row alone, "
          f"so rows of another shape are prepared with the wrong rules.",
          "Make every row the same shape (one mapping template for all).")

    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.count))


def suggest_max_length(lengths, current):
    """(a max_length that keeps 99% of examples whole, what it costs), in steps of 64 tokens."""
    ordered = sorted(lengths)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    suggested = max(64, -(-p99 // 64) * 64)
    extra = sum(min(n, suggested) - min(n, current) for n in lengths)
    return suggested, f"{extra:+,} tokens over the dataset, {extra / max(len(lengths), 1):+.0f} per example"


def _shared_prefix(id_lists):
    if not id_lists:
        return 0
    first, n = id_lists[0], len(id_lists[0])
    for ids in id_lists[1:]:
        k = 0
        while k < n and k < len(ids) and ids[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def _shape(row):
    if "prompt" in row:
        return "conversational prompt-completion" if is_conversational(row) else "prompt-completion"
    if "messages" in row:
        return "conversational"
    return "text"

