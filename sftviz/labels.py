"""What TRL's SFTTrainer trains on: input_ids and labels, rule by rule (TRL 1.16.0).

Read this file top to bottom: `prepare()` follows `SFTTrainer.__init__` and `SFTTrainer._prepare_dataset`
in TRL's own order. What a label is, in the words the page, the CLI and this file all use (LABELS_MEANING):
labels are a copy of input_ids with -100 where nothing is trained, and the model shifts them by one itself:
its output at position t is scored against labels[t+1], so `labels[0]` is never scored (nothing comes before it).

A mode is a pair of SFTConfig flags, exactly as a user would set them (the table MODES below). Every
list of modes in sftviz (the CLI's choices, the page's buttons, plot titles, the tests' oracle) is
read from that table.
"""

import json
from dataclasses import dataclass, field

from . import one_line
from . import packing

IGNORE = -100  # the label value torch's cross-entropy skips
LABELS_MEANING = ("labels = a copy of input_ids, with -100 where nothing is trained; the model shifts them by one: "
                  "its output at position t is scored against labels[t+1]")
MAX_LENGTH_LIMIT = 1_000_000  # no model reads more tokens than this; a larger max_length is a typo


@dataclass(frozen=True)
class Mode:
    name: str  # on the command line and in shared links
    label: str  # on the page
    title: str  # short, on plots and training results
    completion_only_loss: bool | None  # SFTConfig flags, as passed to TRL
    assistant_only_loss: bool
    meaning: str  # one line: what is trained
    on_chat: str  # what it means for chat (messages) data
    trainable: bool = True  # offered as a live-training run

    @property
    def sft_config(self):
        return {"completion_only_loss": self.completion_only_loss, "assistant_only_loss": self.assistant_only_loss}


MODES = {m.name: m for m in (  # in the order the page lists them
    Mode("completion", "Answer only (completion_only_loss)", "answer only", True, False,
         "prompt tokens are context (-100); the completion and its EOS are trained",
         "chats have no prompt/completion split, so TRL silently trains every token: for chats, "
         "answer only means the assistant turns"),
    Mode("whole", "Whole text", "whole text", False, False,
         "every token is trained, prompt included",
         "every token the chat template renders is trained, role headers included"),
    Mode("assistant", "Assistant turns only (assistant_only_loss)", "assistant only", None, True,
         "only the tokens the chat template marks as the assistant's ({% generation %}) are trained",
         "the assistant's turns are trained; TRL refuses it for data that is not a chat"),
    Mode("auto", "TRL default for this data", "TRL default", None, False,
         "SFTConfig's defaults: answer only when the first example has prompt and completion, else whole text",
         "chats are trained whole", trainable=False),
)}


ROW_TYPES = {  # TRL's four row types -> how the page and the doctor name them
    "language_modeling": "plain text",
    "prompt_completion": "prompt-completion",
    "conversational": "conversational",
    "conversational_prompt_completion": "conversational prompt-completion",
}


def row_type(row):
    """Which of TRL's four row types a row is, decided as TRL's tokenize_fn decides it, in its order. The one
    place this is decided: every other part of sftviz asks here.

    A 'prompt' key means prompt-completion (even with no 'completion': TRL then stops); a conversational row
    (a list of {role, ...} messages) means messages; anything else is read as text from the text field.
    ShareGPT 'conversations' count as conversational (TRL renames them to messages first).

    >>> row_type({"prompt": "2+2=", "completion": " 4"})
    'prompt_completion'
    >>> row_type({"messages": [{"role": "user", "content": "Hi"}]})
    'conversational'
    >>> row_type({"prompt": "Q: 2+2?", "answer": "4", "text": "Q: 2+2? 4"})  # a 'prompt' key wins over 'text'
    'prompt_completion'
    """
    if "prompt" in row:
        return "conversational_prompt_completion" if is_conversational(row) else "prompt_completion"
    if is_conversational(row) or is_conversational(from_sharegpt(row)):
        return "conversational"
    return "language_modeling"


def resolved_flags(mode, first_row):
    """(completion_only_loss, assistant_only_loss) as TRL resolves the mode's flags for data whose first row is
    `first_row`: completion_only_loss=None (the default) becomes True when that row has a prompt and a
    completion, else False (TRL's own test)."""
    m = MODES[mode]
    completion_only_loss = m.completion_only_loss
    if completion_only_loss is None:
        completion_only_loss = "prompt" in first_row and "completion" in first_row
    return completion_only_loss, m.assistant_only_loss


def answers_only(mode, first_row):
    """Whether TRL trains only the answers (the completion, or the assistant turns) under this mode for this data,
    rather than the whole text. completion_only_loss does nothing on rows with no prompt/completion split.

    >>> answers_only("auto", {"prompt": "2+2=", "completion": " 4"})
    True
    >>> answers_only("auto", {"messages": [{"role": "user", "content": "Hi"}]})  # TRL's default on chats: all
    False
    >>> answers_only("completion", {"text": "2+2=4"})  # no split to mask: a silent no-op
    False
    """
    completion_only_loss, assistant_only_loss = resolved_flags(mode, first_row)
    return assistant_only_loss or (completion_only_loss and row_type(first_row).endswith("prompt_completion"))


def answer_mode(rows):
    """The mode that trains on the answers only: the assistant turns for chats (messages or ShareGPT
    conversations), the completion otherwise. The one place this rule lives."""
    return "assistant" if row_type(rows[0]) == "conversational" else "completion"


def not_for(mode, first_row):
    """Why `mode` does nothing useful on data whose first row is `first_row` (None when it applies): the page
    offers only the modes that apply, and says why the others do not.

    >>> not_for("completion", {"text": "2+2=4"})
    'no prompt/completion split in this data: TRL would silently train every token'
    >>> not_for("assistant", {"prompt": "2+2=", "completion": " 4"}) is not None  # not a chat: TRL refuses
    True
    >>> not_for("auto", {"text": "2+2=4"}) is None
    True
    """
    kind = row_type(first_row)
    if mode == "completion" and not kind.endswith("prompt_completion"):
        return "no prompt/completion split in this data: TRL would silently train every token"
    if mode == "assistant" and not kind.startswith("conversational"):
        return "this data is not a chat: TRL refuses assistant_only_loss"
    return None


def mode_words(mode, first_row):
    """A mode as the page names it: the TRL default with what it resolves to for this data, else its label.

    >>> mode_words("auto", {"prompt": "2+2=", "completion": " 4"})
    'TRL default → answer only'
    """
    if MODES[mode].completion_only_loss is None and not MODES[mode].assistant_only_loss:
        return f"TRL default → {resolves_to(mode, first_row)}"
    return MODES[mode].label


def resolves_to(mode, first_row):
    """What a mode trains on this data, in words: "answer only", "assistant turns" or "whole text".

    >>> resolves_to("auto", {"prompt": "2+2=", "completion": " 4"}), resolves_to("auto", {"text": "2+2=4"})
    ('answer only', 'whole text')
    """
    if not answers_only(mode, first_row):
        return "whole text"
    return "assistant turns" if MODES[mode].assistant_only_loss else "answer only"


class TRLRefusal(ValueError):
    """TRL would raise for this data/option combination; the message says why, like TRL does."""


@dataclass(frozen=True)
class Options:
    """The SFTConfig settings that decide the labels. Checked when made: the page, its API and the CLI
    all refuse the same bad values with the same words."""

    mode: str = "auto"  # a key of MODES
    max_length: int | None = 1024  # SFTConfig.max_length default; None = no truncation
    packing: bool = False
    packing_strategy: str = "bfd"  # a key of packing.STRATEGIES
    text_field: str = "text"  # SFTConfig.dataset_text_field
    rules: str = "trl"  # whose labels: TRL 1.16 (this file), or another trainer's marker search (markers.py)
    response: str | None = None  # the markers those trainers search for (response_template / response_part)
    instruction: str | None = None  # (instruction_template / instruction_part)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Invalid mode '{self.mode}', must be one of {tuple(MODES)}.")
        packing.refuse_unknown(self.packing_strategy)
        if self.max_length is not None and (isinstance(self.max_length, bool) or not isinstance(self.max_length, int)
                                            or not 1 <= self.max_length <= MAX_LENGTH_LIMIT):
            raise ValueError(f"max_length must be a whole number of tokens from 1 to {MAX_LENGTH_LIMIT:,} (or none), "
                             f"not {self.max_length!r}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise ValueError("the text field (SFTConfig.dataset_text_field) must be a column name")
        if (self.rules, self.response, self.instruction) != ("trl", None, None):
            markers.check_options(self)

    @property
    def sft_config(self):
        """These options as SFTConfig keyword arguments."""
        return {**MODES[self.mode].sft_config, "max_length": self.max_length, "packing": self.packing,
                "packing_strategy": self.packing_strategy, "dataset_text_field": self.text_field}


@dataclass
class Sequence:
    """One row as the collator hands it to the model (a batch of one), plus where its tokens came from."""

    input_ids: list
    labels: list
    attention_mask: list | None  # None under padding-free packing: TRL's collator sends no mask
    position_ids: list | None  # only under padding-free packing, where they restart per document
    sources: list  # index of the source example of every position (the document/segment id)
    dropped: bool = False  # TRL filters this example out: no label left after truncation
    marks: object = None  # markers.Marks: where another trainer's markers matched (None under TRL 1.16)
    offset = 0  # the position of input_ids[0]: always 0 here (the page shows a window of a long one: shown.Window)

    @property
    def full_length(self):
        """Positions in the whole sequence (the lists hold them all, except in a page's window)."""
        return len(self.input_ids)

    @property
    def roles(self):
        """Per position: 'masked' (padding, not attended), 'target' (has a label) or 'context' (-100)."""
        mask = self.attention_mask or [1] * len(self.input_ids)
        return ["masked" if not m else "context" if lab == IGNORE else "target" for m, lab in zip(mask, self.labels)]

    def role_counts(self):
        """{"target": n, "context": n, "masked": n}."""
        if self.attention_mask is None or 0 not in self.attention_mask:  # nothing masked: counted at C speed
            context = self.labels.count(IGNORE)
            return {"target": len(self.labels) - context, "context": context, "masked": 0}
        roles = self.roles
        return {r: roles.count(r) for r in ("target", "context", "masked")}

    @property
    def next_targets(self):
        """What position t is scored on: the label of t+1 (-100 at the last position)."""
        return self.labels[1:] + [IGNORE]

    @property
    def num_scored(self):
        """Tokens that carry loss (labels[0] never does: the model's shift starts at position 1)."""
        return max(0, len(self.labels) - 1 - self.labels[1:].count(IGNORE))


def literal(ids, run=3):
    """A list of ids as a short Python expression: runs of -100 (at least `run` long) as [-100]*n.

    >>> literal([-100, -100, -100, -100, 757, 17, 2])
    '[-100]*4 + [757, 17, 2]'
    >>> literal([5, -100, 6])
    '[5, -100, 6]'
    """
    parts, k = [], 0
    while k < len(ids):
        j = k
        while j < len(ids) and ids[j] == IGNORE:
            j += 1
        if j - k >= run:
            parts.append(f"[{IGNORE}]*{j - k}")
            k = j
            continue
        j = k + 1
        while j < len(ids) and not (ids[j] == IGNORE and ids[j:j + run] == [IGNORE] * run):
            j += 1
        parts.append("[" + ", ".join(map(str, ids[k:j])) + "]")
        k = j
    return " + ".join(parts) or "[]"


@dataclass
class Prepared:
    sequences: list
    completion_only_loss: bool
    assistant_only_loss: bool
    padding_free: bool
    pad_token_id: int
    chat_template: str | None = None  # the training template TRL swaps in, when it does
    warnings: list = field(default_factory=list)
    seams: dict = field(default_factory=dict)  # example -> (position, prompt tokens merged into the completion)
    marks: dict = field(default_factory=dict)  # example -> markers.Marks, under another trainer's marker rules
    rules: str = "trl"  # a key of markers.RULES: whose code made these labels


def is_conversational(example):
    """TRL's test: a prompt/completion/messages value that is a list of {role, ...} dicts."""
    for key in ("prompt", "completion", "messages"):
        value = example.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
            return True
    return False


def is_sharegpt(example):
    """TRL's is_conversational_from_value: a 'conversations' list of {from, value} messages."""
    conv = example.get("conversations")
    return isinstance(conv, list) and bool(conv) and isinstance(conv[0], dict) and {"from", "value"} <= conv[0].keys()


def from_sharegpt(example):
    """TRL renames ShareGPT keys (from/value -> role/content, conversations -> messages), roles unchanged."""
    example = dict(example)
    for key in ("prompt", "completion", "messages", "conversations"):
        if isinstance(example.get(key), list):
            example[key] = [{("role" if k == "from" else "content" if k == "value" else k): v for k, v in m.items()}
                            for m in example[key]]
    if "conversations" in example:
        example["messages"] = example.pop("conversations")
    return example


def common_prefix_length(a, b):
    """How many leading tokens the tokenized prompt `a` and the tokenized prompt+completion `b` share.

    TRL marks the completion from there, not from len(a): tokenizing prompt+completion as one text can
    merge the prompt's last characters with the completion's first ones into a single token (a prompt
    ending in a space, "Answer: " + "4" -> "Answer", ":", " 4"). That merged token belongs to neither
    part alone; TRL counts it as completion, so it is trained."""
    if b[:len(a)] == a:  # the usual case, checked at C speed
        return len(a)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prepare(rows, tokenizer, options=Options(), cache=None):
    """Rows (dicts) -> Prepared, with the sequences in the order TRL's dataloader would index them.

    `cache`: an optional dict the caller keeps for one (rows, tokenizer) pair, so that preparing the
    same data under several modes tokenizes it once.

    A worked example with the bundled tokenizer. A prompt-completion row, TRL's default mode: the tokenizer
    adds BOS, TRL appends EOS (`<|im_end|>` here) to the completion, and only the completion and its EOS
    keep their ids as labels; the prompt is context (-100):

    >>> from sftviz.tokenizer import load_tokenizer, token_texts
    >>> tok = load_tokenizer("default")
    >>> seq = prepare([{"prompt": "What is 2 plus 2?", "completion": " 4."}], tok).sequences[0]
    >>> token_texts(tok, seq.input_ids)
    ['<|bos|>', 'What', '␣is', '␣2', '␣plus', '␣2', '?', '␣4', '.', '<|im_end|>']
    >>> seq.labels
    [-100, -100, -100, -100, -100, -100, -100, 608, 17, 2]

    A chat row with assistant_only_loss: the chat template renders the turns (no EOS is appended), and only
    what it marks as the assistant's, `Hello.` and its end-of-turn, is trained; the role headers are context:

    >>> chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    >>> seq = prepare([chat], tok, Options("assistant")).sequences[0]
    >>> [text for text, label in zip(token_texts(tok, seq.input_ids), seq.labels) if label != IGNORE]
    ['H', 'ell', 'o', '.', '<|im_end|>']
    """
    if options.rules != "trl":  # another trainer's marker search makes the labels: markers.py
        return markers.prepare(rows, tokenizer, options)
    if not rows:
        raise ValueError("the dataset is empty")
    assistant_only_loss = MODES[options.mode].assistant_only_loss  # Options has checked the name
    first, warnings = rows[0], []

    # TRL checks the options against the first example as given, before any conversion.
    if assistant_only_loss and not is_conversational(first):  # TRL's own test, on the first row as given
        raise TRLRefusal("You set `assistant_only_loss=True`, but the dataset is not conversational. "
                         "This option is only supported for conversational datasets (ShareGPT 'conversations' "
                         "count as not conversational here: map them to 'messages' first).")

    # ShareGPT data is renamed to messages first (the roles keep their names, e.g. "human"/"gpt").
    if is_sharegpt(first):
        rows = [from_sharegpt(r) for r in rows]
        first = rows[0]

    padding_free = options.packing and packing.STRATEGIES[options.packing_strategy].padding_free  # BFD: no padding
    # Assistant-only loss needs chat data and a template that marks the assistant's text with
    # {% generation %}. TRL swaps in its own training template for models it knows, else refuses.
    chat_template = None
    if assistant_only_loss:
        chat_template = training_chat_template(tokenizer)
        warnings += [] if stop_token_trained(tokenizer, chat_template) else [STOP_TOKEN_WARNING]

    # completion_only_loss=None means: True if the FIRST example has both prompt and completion.
    completion_only_loss, _ = resolved_flags(options.mode, first)

    # Padding uses pad_token, or EOS when the tokenizer has none (GPT-2). Labels are built before
    # padding, so pad == eos does NOT hide the real EOS from the loss in TRL 1.16.
    pad_token_id = pad_id(tokenizer)
    if options.packing and options.max_length is None:
        raise TRLRefusal("When packing is enabled, `max_length` can't be `None`.")

    # EOS is appended as a string to plain text / plain completions (not chats: the template decides
    # how a turn ends), unless the text already ends with it. The tokenizer then maps it to EOS's id.
    if not is_conversational(first):  # TRL's own test, on the first row
        rows = [add_eos(r, tokenizer.eos_token, options.text_field) for r in rows]
        warnings += eos_split_warning(tokenizer)

    cache = {} if cache is None else cache  # one tokenization per (text field, assistant mask) for every mode
    key = (options.text_field, assistant_only_loss)
    if key not in cache:
        cache[key] = tokenize(rows, tokenizer, options.text_field, assistant_only_loss, chat_template)
    ids, prompt_lens, assistant_masks, seams, tokenize_warnings = cache[key]
    warnings += tokenize_warnings

    labels = build_labels(ids, prompt_lens, assistant_masks, completion_only_loss)
    rows_out = packing.pack(ids, labels, options.max_length, options.packing_strategy) if options.packing \
        else truncate(ids, labels, options.max_length)
    sequences = [as_collated(row, padding_free) for row in rows_out]
    return Prepared(sequences, completion_only_loss, assistant_only_loss, padding_free, pad_token_id,
                    chat_template, warnings, seams)


def pad_id(tok):
    """The id padding uses: the pad token's, or the EOS's when the tokenizer has none (TRL's rule, and the recipe
    every TRL 0.19 example follows)."""
    return tok.pad_token_id if tok.pad_token is not None else tok.eos_token_id


def build_labels(ids, prompt_lens, assistant_masks, completion_only_loss):
    """TRL's build_labels: a token keeps its id as label iff every applicable mask says so. The assistant mask
    always applies; the completion mask (prompt tokens 0, completion tokens 1) only with completion_only_loss.
    No mask: every token is a target, labels == input_ids.

    >>> build_labels([[1, 5, 6, 7, 2]], [3], [None], completion_only_loss=True)  # a 3-token prompt
    [[-100, -100, -100, 7, 2]]
    >>> build_labels([[1, 5, 6, 7, 2]], [3], [None], completion_only_loss=False)  # whole text
    [[1, 5, 6, 7, 2]]
    """
    labels = []
    for row_ids, prompt_len, assistant_mask in zip(ids, prompt_lens, assistant_masks):
        if completion_only_loss and prompt_len is not None:
            row_labels = [IGNORE] * prompt_len + row_ids[prompt_len:]
        else:
            row_labels = list(row_ids)
        if assistant_mask is not None:
            row_labels = [t if m else IGNORE for t, m in zip(row_labels, assistant_mask)]
        labels.append(row_labels)
    return labels


def truncate(ids, labels, max_length):
    """Without packing: truncation keeps the START (truncation_mode="keep_start"), so a long prompt pushes the
    answer and its EOS out, and an example left with no label at all is dropped by TRL (flagged here). Rows
    are (input_ids, labels, source of each token, None, dropped), as packing.pack makes them. (Packing has no
    truncation step and no filter: it cuts rows to max_length itself.)"""
    rows = []
    for i, (row_ids, row_labels) in enumerate(zip(ids, labels)):
        if max_length is not None and len(row_ids) > max_length:
            row_ids, row_labels = row_ids[:max_length], row_labels[:max_length]
        dropped = max_length is not None and (not row_labels or max(row_labels) == IGNORE)
        rows.append((row_ids, row_labels, [i] * len(row_ids), None, dropped))
    return rows


def as_collated(row, padding_free):
    """A row as the collator hands it to the model in a batch of one. Padding-free, the collator sends
    position_ids that restart at 0 for each document and no attention mask, and sets label -100 where a
    document starts, so no token is ever predicted across a document boundary."""
    row_ids, row_labels, sources, seq_lengths, dropped = row
    if not padding_free:
        return Sequence(row_ids, row_labels, [1] * len(row_ids), None, sources, dropped)
    position_ids = [p for n in seq_lengths for p in range(n)]
    row_labels = [IGNORE if p == 0 else lab for p, lab in zip(position_ids, row_labels)]
    return Sequence(row_ids, row_labels, None, position_ids, sources, dropped)


def eos_split_warning(tokenizer):
    """[a warning] when the tokenizer reads the EOS string after a word as plain tokens (then the EOS id TRL
    means to append never reaches the model), else []."""
    probe = tokenizer("x" + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    if probe[-1:] == [tokenizer.eos_token_id]:
        return []
    return [f"TRL appends the EOS token as text, and this tokenizer splits {tokenizer.eos_token!r} after a word "
            f"into {len(probe) - 1} plain tokens: the model never sees the EOS id, so it cannot learn to stop."]


def add_eos(row, eos, text_field):
    if isinstance(row.get(text_field), str) and not row[text_field].endswith(eos):
        return {**row, text_field: row[text_field] + eos}
    elif isinstance(row.get("completion"), str) and not row["completion"].endswith(eos):
        return {**row, "completion": row["completion"] + eos}
    return row


def tokenize(rows, tok, text_field, assistant_only_loss, chat_template):
    """input_ids, the prompt length (prompt-completion), the assistant mask (assistant_only_loss), the seams
    (prompts whose tokens are not a prefix of prompt+completion's), warnings.

    Plain strings go through `tokenizer(text)`, which adds the tokenizer's special tokens (e.g. BOS);
    chats go through `apply_chat_template`, which does not (the template writes them). Rows are
    tokenized in batches: the same result as TRL's one-by-one calls, many times faster.
    """
    n, warnings = len(rows), []
    ids, prompt_lens, assistant_masks = [None] * n, [None] * n, [None] * n
    groups = {"text": [], "pc": [], "chat": [], "chat_pc": []}
    group = {"language_modeling": "text", "prompt_completion": "pc", "conversational": "chat",
             "conversational_prompt_completion": "chat_pc"}
    for i, row in enumerate(rows):
        kind = row_type(row)  # TRL dispatches per example
        if kind.endswith("prompt_completion") and "completion" not in row:
            raise TRLRefusal(f"example {i} has a 'prompt' but no 'completion' column")
        if kind == "language_modeling" and not isinstance(row.get(text_field), str):
            raise TRLRefusal(f"example {i} has no {text_field!r} text field, no prompt/completion and no messages "
                             f"(columns: {', '.join(row)}); map it to a TRL format first")
        groups[group[kind]].append(i)

    if groups["text"]:
        for i, e in zip(groups["text"], encode(tok, [rows[i][text_field] for i in groups["text"]])):
            ids[i] = e
    prompts, fulls = [], []
    if groups["pc"]:
        pc = groups["pc"]
        enc = encode(tok, [rows[i]["prompt"] for i in pc] + [rows[i]["prompt"] + rows[i]["completion"] for i in pc])
        prompts, fulls = enc[:len(pc)], enc[len(pc):]
    if groups["chat"]:
        enc = chat(tok, [rows[i] for i in groups["chat"]], "messages", chat_template, assistant_only_loss)
        for i, (e, am) in zip(groups["chat"], enc):
            ids[i], assistant_masks[i] = e, am
    if groups["chat_pc"]:
        sel = [rows[i] for i in groups["chat_pc"]]
        prompts += [e for e, _ in chat(tok, sel, "prompt", chat_template, False, add_generation_prompt=True)]
        full = chat(tok, [{**r, "full": r["prompt"] + r["completion"]} for r in sel], "full", chat_template,
                    assistant_only_loss)
        fulls += [e for e, _ in full]
        for i, (_, am) in zip(groups["chat_pc"], full):
            assistant_masks[i] = am

    # The completion starts where the tokenized prompt and prompt+completion diverge. Usually that is
    # the end of the prompt, but BPE can merge tokens across the boundary (a prompt ending in a
    # space), and then the merged token counts as completion.
    seams = {}  # example -> (where they diverge, the prompt's own last tokens prompt+completion does not start with)
    for i, p, full in zip(groups["pc"] + groups["chat_pc"], prompts, fulls):
        k = common_prefix_length(p, full)
        if k < len(p):
            seams[i] = (k, p[k:])
            if len(seams) == 1:
                warnings.append(f"TRL warns: the tokenized prompt is not a prefix of the tokenized prompt+completion "
                                f"(example {i}: {tok.decode(p[k:])!r} is left out); the completion starts where "
                                f"they diverge.")
        ids[i], prompt_lens[i] = full, k

    # Assistant-only loss with an example that has no assistant token is an error in TRL.
    for i, am in enumerate(assistant_masks):
        if am is not None and 1 not in am:
            raise TRLRefusal(f"You're using `assistant_only_loss=True`, but example {i} has no assistant tokens "
                             "(check the roles: the template marks only role 'assistant').")
    return ids, prompt_lens, assistant_masks, seams, warnings


def encode(tok, texts):
    """`tok(texts)["input_ids"]` (special tokens added), straight from the Rust backend when that is identical."""
    backend = tok._tokenizer
    if backend.truncation or backend.padding or backend.encode_special_tokens != bool(tok.split_special_tokens):
        return tok(texts)["input_ids"]
    return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=True)]


def chat(tok, rows, key, chat_template, assistant_mask, add_generation_prompt=False):
    """apply_chat_template on rows[key], batched when no row carries its own tools/template kwargs."""
    def one_call(convs, extra):
        out = tok.apply_chat_template(convs, tokenize=True, return_dict=True, chat_template=chat_template,
                                      return_assistant_tokens_mask=assistant_mask,
                                      add_generation_prompt=add_generation_prompt, **extra)
        masks = out["assistant_masks"] if assistant_mask else [None] * len(out["input_ids"])
        return list(zip(out["input_ids"], masks))

    try:
        if not any("tools" in r or "chat_template_kwargs" in r for r in rows):
            return one_call([r[key] for r in rows], {})
        result = []
        for r in rows:
            tools = r.get("tools")
            if isinstance(tools, str):
                tools = json.loads(tools)
            result += one_call([r[key]], {"tools": tools, **(r.get("chat_template_kwargs") or {})})
        return result
    except ValueError as e:
        if "chat template" in str(e).lower() or "chat_template" in str(e):
            raise TRLRefusal(f"the tokenizer has no chat template for conversational data: {e}") from None
        raise


def training_chat_template(tok):
    """None if the tokenizer's template has {% generation %} tags, else TRL's training template or refusal.

    TRL's own functions decide (they know which model templates they can swap)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if tok.chat_template is None:  # TRL would fail with a TypeError here; say what is missing instead
        raise TRLRefusal("assistant_only_loss needs a chat template, and this tokenizer has none.")
    if has_generation_markers(tok.chat_template):
        return None
    try:
        return get_training_chat_template(tok)
    except ValueError as e:
        raise TRLRefusal(f"The chat template has no {{% generation %}} tags and TRL does not know it: "
                         f"{one_line(e)}") from None


STOP_TOKEN_WARNING = ("TRL warns: the chat template does not include the assistant turn's end-of-turn token in the "
                      "loss mask; the model may not learn to stop.")


def stop_token_trained(tok, chat_template):
    """TRL's check that the assistant's end-of-turn token is inside the mask (TRL only warns)."""
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    return is_chat_template_stop_token_trained(tok, chat_template=chat_template)


def collate(sequences, pad_token_id, pad_to=None):
    """The collator without padding-free: right-pad a batch to its longest row (or to `pad_to` positions).
    Padding gets the pad id, label -100 and attention_mask 0 (masked). Labels are never masked by token id,
    so pad == eos is safe.

    >>> a = Sequence([1, 5, 6, 2], [-100, -100, 6, 2], [1, 1, 1, 1], None, [0, 0, 0, 0])
    >>> b = Sequence([1, 7], [-100, 7], [1, 1], None, [1, 1])
    >>> padded = collate([a, b], pad_token_id=2)[1]  # pad id 2 is also the EOS: its label stays -100
    >>> padded.input_ids, padded.labels, padded.attention_mask
    ([1, 7, 2, 2], [-100, 7, -100, -100], [1, 1, 0, 0])
    """
    width = pad_to or max(len(s.input_ids) for s in sequences)
    out = []
    for s in sequences:
        n = width - len(s.input_ids)
        out.append(Sequence(s.input_ids + [pad_token_id] * n, s.labels + [IGNORE] * n,
                            (s.attention_mask or [1] * len(s.input_ids)) + [0] * n, s.position_ids,
                            s.sources + [-1] * n, s.dropped))
    return out


from . import markers  # noqa: E402 - other trainers' rules, built on this module's pieces
