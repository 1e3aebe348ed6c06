"""Datasets: load (bundled sample, local file, Hub id), detect TRL's type, map common shapes to TRL's format.

TRL's four dataset types (https://huggingface.co/docs/trl/dataset_formats):
    language_modeling                 {"text": "..."}
    prompt_completion                 {"prompt": "...", "completion": "..."}
    conversational                    {"messages": [{"role": ..., "content": ...}, ...]}
    conversational_prompt_completion  {"prompt": [messages], "completion": [messages]}
ShareGPT ({"conversations": [{"from", "value"}]}) is accepted by TRL too (renamed to messages).

TRL decides how to read a row from its columns (`trl_reading`), and so does sftviz: a row with the text
field is language modeling whatever other columns it has, and a `prompt` column means prompt-completion
even with no `completion` (then TRL stops, and so does sftviz: `TRLStops`, with the fixes).

Shapes people actually have can be mapped to prompt/completion (or messages) with a visible, editable
Jinja template, so the user sees exactly what text the model gets. The mapping is the default only where
TRL cannot read the file at all; elsewhere it is the user's choice (`decide`, `READINGS`):
    question_answer   {"question", "answer"}               e.g. GSM8K
    alpaca            {"instruction", "input", "output"}
    prompt_answer     {"prompt", "answer"} (+ maybe "text" = both glued together, dropped by the mapping)
    sharegpt          {"conversations": [{"from": "human"|"gpt", "value"}]} roles renamed to user/assistant
    custom            any other columns, with a prompt and a completion template written by the user

`load_trl()` is the one way in, for the page and the command line alike (the doctor's pass over every row
reads the same `iter_chunks`): a `Source` (where the rows are and how to read them) -> raw rows -> how to
read them (`decide`) -> rows in TRL's format.
"""

import glob
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace

from . import hub, one_line, quoted, readers
from .labels import row_type
from .tokenizer import ASSETS

SAMPLES_DIR = os.path.join(ASSETS, "samples")
DEFAULT_SAMPLE = "quiz_prompt_completion"
EXTENSIONS = readers.EXTENSIONS


class DataError(ValueError):
    """The data could not be loaded or understood; the message says why, in one line."""


@dataclass(frozen=True)
class Source:
    """Where a dataset's rows come from and how to read them: the one record the page, the CLI and the doctor
    pass to data (a plain name means a Source with every other field at its default)."""

    name: str  # a bundled sample name, a local file or folder, or a Hub dataset id
    where: str = "any"  # what `name` may be (see load): any | sample | file | hub
    config: str | None = None  # a Hub dataset's config and split
    split: str = "train"
    prompt_template: str | None = None  # mapping templates; one given means the "map" reading
    completion_template: str | None = None
    text_field: str = "text"  # SFTConfig.dataset_text_field
    columns: str = "trl"  # how to read the columns: a key of READINGS

    @classmethod
    def of(cls, source, **fields):
        """`source` (a Source or a name) as a Source, with `fields` changed."""
        return replace(source, **fields) if isinstance(source, cls) else cls(source, **fields)


def samples():
    """Bundled sample names -> file paths."""
    paths = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.*")))
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths if os.path.splitext(p)[1] in EXTENSIONS}



def load(source, limit=None, **fields):
    """A bundled sample, a local file or folder, or a Hub dataset id (a Source, or a name and Source fields) ->
    list of row dicts (at most `limit`; from a Hub dataset at most MAX_HUB_BYTES), as they are in the source.

    `where` says what the source may be: "any" (the command line, on the user's own machine), or, for the
    hosted page, "sample", "file" (a file the server itself wrote: the visitor's upload) or "hub" (a Hub
    id, never a path on the server)."""
    source = Source.of(source, **fields)
    rows = list(itertools.islice(rows_of(source, MAX_HUB_BYTES), limit))
    if not rows:
        raise DataError(f"{source.name}: the dataset has no rows")
    return rows


def resolve(source):
    """("file", path) or ("dataset", a local dataset folder or Hub id): what the Source's name is allowed to be
    under its `where` (see load). The one place these rules live: every reader of a visitor's source goes
    through it."""
    config, split, where = source.config, source.split, source.where
    source = (source.name or "").strip()
    if not source:
        raise DataError("no dataset given")
    if where in ("any", "sample") and source in samples():
        return "file", samples()[source]
    if where == "sample":
        raise DataError(f"{quoted(source)} is not a bundled sample; choose one of {', '.join(samples())}")
    if where == "file":
        if not os.path.isfile(source):
            raise DataError("the uploaded file is gone (uploads are deleted when the session ends): upload it again")
        return "file", source
    if where == "any" and os.path.isfile(source):
        return "file", source
    if where == "any" and os.path.isdir(source):
        return "dataset", source  # load_dataset reads a local folder as it reads a repo
    if where == "any" and (source.startswith((".", "/", "~")) or source.lower().endswith(EXTENSIONS)):
        raise DataError(f"{quoted(source)} is not a bundled sample, a file or a folder")
    hub.check_id(source, "dataset", DataError)
    hub.check_config(config, "config")
    hub.check_config(split, "split")
    if not hub.reachable():
        raise DataError(hub.unavailable("dataset", source))
    return "dataset", source


MAX_HUB_BYTES = int(os.environ.get("SFTVIZ_MAX_HUB_MB", 64)) * 2**20  # read from a Hub dataset at most


def rows_of(source, max_bytes=None, notes=None):
    """Every row of a Source, one by one: the one way rows come in, for the page, the CLI and the doctor's pass
    over every row alike. A file is read by readers.iter_rows; a Hub dataset or a local dataset folder is
    streamed by `datasets` (nothing downloaded whole, nothing written to its cache), at most `max_bytes` of it.
    Whatever goes wrong is one DataError line."""
    config, split = source.config, source.split
    kind, source = resolve(source)
    if kind == "file":
        try:
            yield from readers.iter_rows(source, notes)
        except readers.FileError as e:
            raise DataError(str(e)) from None
        return
    import datasets

    datasets.disable_progress_bars()
    size = 0
    try:
        for row in datasets.load_dataset(source, config, split=split or "train", streaming=True):
            yield row
            size += len(repr(row)) if max_bytes else 0
            if max_bytes and size > max_bytes:
                return
    except Exception as e:  # datasets raises many types for one meaning: this cannot be loaded
        if os.path.isdir(source):
            raise DataError(f"cannot read the dataset folder {os.path.basename(source)!r}: {one_line(e)[:200]}") \
                from None
        raise DataError(f"{hub.unavailable('dataset', source)} ({one_line(e)[:160]})") from None


def _is_messages(value, keys=("role", "content")):
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and set(keys) <= value[0].keys()


# --- How TRL reads a file as it is ------------------------------------------------------------------

def trl_reading(row, text_field="text"):
    """How TRL 1.16's SFTTrainer reads this (first) row as it is: (TRL type, None), or (None, the error TRL
    stops with). SFTTrainer._prepare_dataset renames ShareGPT conversations to messages; then its
    tokenize_fn asks, in this order:
      1. is there a 'prompt' key?  -> prompt-completion, even with no 'completion' (then: KeyError)
      2. is the row conversational (a list of {role, ...} under prompt/completion/messages)?  -> messages
      3. otherwise                -> the text field (SFTConfig.dataset_text_field), whatever else is there.
    So a 'prompt' column beside 'text' wins over 'text', and 'text' wins over question/answer columns."""
    if _is_messages(row.get("conversations"), ("from", "value")):
        return "sharegpt", None
    kind = row_type(row)
    if isinstance(row.get("messages"), list) and kind == "language_modeling" and text_field not in row:
        kind = "conversational"  # messages without roles: refused by check_rows, naming the row
    if kind.endswith("prompt_completion") and "completion" not in row:
        return None, "KeyError: 'completion'"
    if kind == "conversational" and "messages" not in row:
        return None, "KeyError: 'messages'"
    if kind == "language_modeling" and text_field not in row:
        return None, f"KeyError: {text_field!r}"
    return kind, None


def mapping_shape(row):
    """The shape of columns we know how to map to prompt/completion, or None."""
    cols = set(row)
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"question", "answer"} <= cols:
        return "question_answer"
    if {"prompt", "answer"} <= cols or {"prompt", "response"} <= cols:
        return "prompt_answer"
    return None


def detect(rows, text_field="text"):
    """What the page shows for these rows by default: the TRL type TRL reads them as, or (where TRL cannot
    read them at all) the shape we map, or "unknown"."""
    kind, _ = trl_reading(rows[0], text_field)
    return kind or mapping_shape(rows[0]) or "unknown"


TRL_TYPES = ("language_modeling", "prompt_completion", "conversational", "conversational_prompt_completion")

# How the page and the CLI may read a file: the user's choice (`columns`), "trl" by default.
READINGS = {
    "trl": "As TRL reads your file",
    "drop_prompt": "Drop the prompt column: TRL trains the whole text",
    "map": "Map the columns to prompt/completion: TRL trains the answer only",
}


def column_list(columns, shown=8):
    """`a`, `b`, `c` ... and 9,992 more: a message names a few columns, never a million."""
    columns = list(columns)
    head = ", ".join(f"`{c}`" for c in columns[:shown])
    return head + (f" and {len(columns) - shown:,} more" if len(columns) > shown else "")


class NeedsMapping(DataError):
    """The columns are no shape we know: the user must write the prompt and completion templates."""

    def __init__(self, columns):
        self.columns = list(columns)
        super().__init__(f"unrecognised columns {column_list(self.columns)}: not a TRL format (text / "
                         f"prompt+completion / messages / conversations) nor question+answer / instruction+output / prompt+answer; "
                         f"write a prompt and a completion template with the columns as variables "
                         f"(or set the text field)")


class TRLStops(DataError):
    """TRL itself stops on this file as it is. args: (the one-line reason, the readings that fix it). (Only
    args travel back from the child process that loads a visitor's data: see sftviz.bounded.)"""

    def __str__(self):
        return self.args[0]

    @property
    def fixes(self):
        return self.args[1] if len(self.args) > 1 else ()


def stops_message(row, text_field="text"):
    """TRL's refusal of a row with a 'prompt' and no 'completion', in one line, over the row's own columns."""
    from . import TRL_VERSION

    other = [c for c in row if c != "prompt"]
    return (f"TRL {TRL_VERSION} stops on this file with KeyError: 'completion': it sees the `prompt` column, takes "
            f"the prompt-completion path and looks for a `completion` column"
            + (f" (your `{text_field}` column is never read)" if text_field in row else "")
            + f". Your columns: {column_list(['prompt', *other])}.")


@dataclass
class Mapping:
    """Jinja templates that turn one row into TRL's prompt/completion strings (variables = the row's columns)."""

    prompt: str
    completion: str


DEFAULT_MAPPINGS = {
    "question_answer": Mapping("Question: {{ question }}\nAnswer:", " {{ answer }}"),
    "alpaca": Mapping(
        "### Instruction:\n{{ instruction }}\n\n{% if input %}### Input:\n{{ input }}\n\n{% endif %}### Response:\n",
        "{{ output }}"),
    "prompt_answer": Mapping("{{ prompt }}\n", "{{ answer if answer is defined else response }}"),
}


def default_mapping(shape, row):
    """The mapping offered for this shape, fitted to the file's first row. TRL concatenates prompt + completion
    as given, so a prompt/answer pair needs what separates them: where a `text` column holds prompt, separator
    and answer, that separator (spaces before the answer go to the completion, the rest ends the prompt); where
    the prompt or the answer already carries the whitespace, nothing; else a newline.

    >>> default_mapping("prompt_answer", {"prompt": "France?", "answer": "Paris.", "text": "France? Paris."})
    Mapping(prompt='{{ prompt }}', completion=' {{ answer if answer is defined else response }}')
    >>> default_mapping("prompt_answer", {"prompt": "France?", "answer": "Paris."}).prompt == "{{ prompt }}\\n"
    True
    """
    base = DEFAULT_MAPPINGS[shape]
    if shape != "prompt_answer":
        return base
    answer = base.completion
    p, a, t = row.get("prompt"), row.get("answer", row.get("response")), row.get("text")
    if not (isinstance(p, str) and isinstance(a, str)):
        return base
    if isinstance(t, str) and t.startswith(p) and t.endswith(a) and len(t) - len(p) - len(a) in range(0, 41):
        middle = t[len(p):len(t) - len(a)]
        head = middle.rstrip(" \t")
        return Mapping("{{ prompt }}" + _literal(head), middle[len(head):] + answer)
    if p[-1:].isspace() or a[:1].isspace() or not p or not a:
        return Mapping("{{ prompt }}", answer)
    return base


def _literal(text):
    """`text` as it reads inside a Jinja template (quoted where it holds template syntax)."""
    return text if not any(c in text for c in "{}%#") else "{{ " + json.dumps(text) + " }}"

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}

EXPLAIN = {
    "language_modeling": "language modeling text: TRL trains on every token (+ EOS).",
    "prompt_completion": "prompt-completion: by default TRL trains on the completion only (+ EOS).",
    "conversational": "conversational messages: by default TRL trains on every token the chat template renders.",
    "conversational_prompt_completion": "conversational prompt-completion: by default TRL trains on what the "
                                        "template renders after the prompt.",
    "sharegpt": "ShareGPT conversations: TRL renames from/value to role/content but keeps the role names; "
                "sftviz maps human->user and gpt->assistant so chat templates recognise the assistant.",
    "alpaca": "Alpaca instruction/input/output, mapped to prompt/completion with the template.",
    "question_answer": "question/answer, mapped to prompt/completion with the template.",
    "prompt_answer": "prompt/answer, mapped to prompt/completion with the template (`answer` renamed "
                     "`completion`, other columns dropped).",
    "custom": "your own columns: mapped to prompt/completion with your templates.",
}


@dataclass
class Decision:
    """How a file's rows become TRL's rows: which reading, the kind shown, a mapping, columns dropped, what TRL
    does with the file as it is (a TRL type or the error it stops with) and the other readings offered."""

    reading: str  # a key of READINGS
    kind: str
    mapping: Mapping | None = None
    drop: tuple = ()
    as_is: str = ""
    offers: tuple = ()


def decide(first_row, text_field="text", columns="trl", prompt_template=None, completion_template=None):
    """The one rule for reading a file, the same everywhere (page, CLI, doctor, export):

    * "trl" (the default): the rows as TRL reads them, because that is what a TRL run gets. Where TRL stops
      on them (a `prompt` column with no `completion`), say so: TRLStops, with the fixes. Only where TRL
      cannot read the file at all (no prompt, no messages, no text field) is a mapping the default.
    * "map": the columns mapped to prompt/completion by a visible template (the shape's default, where the
      user's prompt or completion template replaces a part). A template given is this choice.
    * "drop_prompt": the `prompt` column removed; TRL then reads the text field."""
    if columns not in READINGS:
        raise DataError(f"columns must be one of {', '.join(READINGS)}, not {quoted(columns)}")
    trl_kind, stop = trl_reading(first_row, text_field)
    shape = mapping_shape(first_row)
    offers = []
    if stop == "KeyError: 'completion'" and text_field in first_row:
        offers.append("drop_prompt")
    if shape and trl_kind in (None, "language_modeling"):
        offers.append("map")
    as_is = trl_kind or stop
    if (prompt_template or completion_template) and columns == "trl":
        columns = "map"
    if columns == "trl":
        if trl_kind:
            return Decision("trl", trl_kind, as_is=as_is, offers=tuple(offers))
        if stop == "KeyError: 'completion'":
            raise TRLStops(stops_message(first_row, text_field), tuple(offers))
        if not shape and not (prompt_template and completion_template):
            raise NeedsMapping(first_row)
        columns = "map"  # TRL cannot read the file at all: a mapping is the only way in
    if columns == "map":
        if trl_kind not in (None, "language_modeling"):
            raise DataError(f"this data is already in TRL's {trl_kind} format and TRL uses it as it is: a mapping "
                            f"template is for other shapes (question/answer, Alpaca, prompt/answer, your own columns)")
        if shape:
            base = default_mapping(shape, first_row)
            mapping = Mapping(prompt_template or base.prompt, completion_template or base.completion)
        elif prompt_template and completion_template:
            mapping = Mapping(prompt_template, completion_template)
        else:
            raise NeedsMapping(first_row)
        return Decision("map", shape or "custom", mapping, as_is=as_is, offers=tuple(offers))
    if "prompt" not in first_row:
        raise DataError("there is no `prompt` column to drop")
    kind, stop = trl_reading({k: v for k, v in first_row.items() if k != "prompt"}, text_field)
    if not kind:
        raise DataError(f"without its `prompt` column TRL still cannot read this file ({stop}): "
                        f"set the text field, or map the columns")
    return Decision("drop_prompt", kind, drop=("prompt",), as_is=as_is, offers=tuple(offers))


def fix_words(reading, row, text_field="text"):
    """What choosing `reading` does to this file, over its own columns, in one sentence."""
    if reading == "drop_prompt":
        return f"drop (or rename) the `prompt` column, and TRL trains the whole `{text_field}`: every token"
    if reading == "map":
        shape = mapping_shape(row)
        if shape == "prompt_answer":
            answer = "answer" if "answer" in row else "response"
            dropped = [c for c in row if c not in ("prompt", answer)]
            drop = f" and drop {column_list(dropped)}" if dropped else ""
            return f"rename `{answer}` to `completion`{drop}, and TRL trains the answer only"
        named = {"alpaca": "`instruction`/`input`/`output`", "question_answer": "`question`/`answer`"}.get(shape,
                                                                                                 "your columns")
        return f"map {named} to prompt/completion with the template, and TRL trains the answer only"
    return "read the file as it is, as TRL does"


def as_is_line(decision, text_field="text"):
    """One line: what TRL does with the file as it is, when the rows shown are not that (mapped, a column
    dropped); "" when they are."""
    from . import TRL_VERSION

    if decision.reading == "trl":
        return ""
    if decision.as_is == "language_modeling":
        return f"As your file is, TRL {TRL_VERSION} reads only its `{text_field}` column and trains every token of it."
    if decision.as_is == "KeyError: 'completion'":
        return (f"As your file is, TRL {TRL_VERSION} stops with KeyError: 'completion' "
                f"(it sees the `prompt` column and looks for `completion`).")
    if decision.as_is.startswith("KeyError"):
        return (f"As your file is, TRL {TRL_VERSION} stops with {decision.as_is}: it has no `{text_field}` "
                f"column, no `prompt` and no `messages`.")
    return ""


@dataclass
class Loaded:
    """A dataset on its way to TRL: the rows as read, their shape, the mapping used (if any), TRL's rows,
    and how they were read (data.Decision)."""

    source: str
    raw: list
    rows: list
    decision: Decision
    notes: dict = field(default_factory=dict)  # what reading the file changed (readers.iter_rows)

    @property
    def kind(self):
        return self.decision.kind

    @property
    def mapping(self):
        return self.decision.mapping


def load_trl(source, limit=None, **fields):
    """The page's and the CLI's load of a Source (or a name and Source fields): the first chunk of iter_chunks,
    of at most `limit` rows (from a Hub dataset at most MAX_HUB_BYTES)."""
    return next(iter_chunks(source, limit or sys.maxsize, limit, MAX_HUB_BYTES, **fields))


def count_rows(source):
    """About how many rows a Source has (None when that is not known without reading it all: a Hub dataset)."""
    kind, path = resolve(Source.of(source))
    return readers.count_rows(path) if kind == "file" else None


def iter_chunks(source, chunk_rows=10_000, limit=None, max_bytes=None, **fields):
    """The one loading path: a Source -> rows (rows_of) -> how to read them (decide, on the first row) -> TRL's
    rows, in chunks of `chunk_rows` as Loaded records, so a dataset of any size streams through with flat memory.
    A chunk's bad row is named by its index in the dataset."""
    source = Source.of(source, **fields)
    notes = {}  # what reading changed (readers.iter_rows), shared by every chunk as the reading goes on
    rows = rows_of(source, max_bytes, notes)
    if limit:
        rows = itertools.islice(rows, limit)
    decision, done = None, 0
    while True:
        chunk = list(itertools.islice(rows, chunk_rows))
        if not chunk:
            if not done:
                raise DataError(f"{source.name}: the dataset has no rows")
            return
        decision = decision or decide(chunk[0], source.text_field, source.columns, source.prompt_template or None,
                                      source.completion_template or None)
        try:
            trl_rows = check_rows(to_trl(chunk, decision), source.text_field)
        except DataError as e:  # say which row of the dataset, not of the chunk
            raise DataError(re.sub(r"row (\d+)", lambda m: f"row {int(m.group(1)) + done}", str(e), count=1)) \
                from None
        yield Loaded(source.name, chunk, trl_rows, decision, notes)
        done += len(chunk)


MAX_TEXT_BYTES = int(os.environ.get("SFTVIZ_MAX_TEXT_MB", 64)) * 2**20  # what mapping templates may write in all


def to_trl(rows, decision=None, text_field="text", mapping=None):
    """Rows in TRL's format under `decision` (default: data.decide's for the first row), or through `mapping`."""
    decision = decision or (Decision("map", "custom", mapping) if mapping else decide(rows[0], text_field))
    if decision.mapping is not None:
        return render_mapping(rows, decision.mapping)
    if decision.drop:
        rows = [{k: v for k, v in r.items() if k not in decision.drop} for r in rows]
    if decision.kind == "sharegpt":
        return [{"messages": [{"role": SHAREGPT_ROLES.get(str(m.get("from")).lower(), m.get("from")),
                               "content": m.get("value")} for m in _list_of_dicts(r.get("conversations"), i,
                                                                                  "conversations")]}
                for i, r in enumerate(rows)]
    return rows


def render_mapping(rows, mapping):
    """Each row through the prompt and completion templates, in Jinja's sandbox (no access to Python
    internals). Time and memory are bounded by the caller (sftviz.bounded); the text written is bounded here."""
    from jinja2 import StrictUndefined, TemplateError, UndefinedError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # StrictUndefined: a misspelled column is an error, not a silently empty prompt.
    env = ImmutableSandboxedEnvironment(keep_trailing_newline=True, undefined=StrictUndefined)
    try:
        p, c = env.from_string(mapping.prompt), env.from_string(mapping.completion)
    except TemplateError as e:
        raise DataError(f"template error: {one_line(e)}") from None
    out, size = [], 0
    for i, r in enumerate(rows):
        try:
            mapped = {"prompt": p.render(r), "completion": c.render(r)}
        except UndefinedError as e:
            raise DataError(f"template error: {e} (the row's columns: {column_list(r)})") from None
        except MemoryError:  # the work budget's to report (sftviz.bounded)
            raise
        except Exception as e:  # any failure inside a template is the template's: say which row
            raise DataError(f"template error in row {i}: {type(e).__name__}: {one_line(e)}") from None
        size += len(mapped["prompt"]) + len(mapped["completion"])
        if size > MAX_TEXT_BYTES:
            raise DataError(f"the templates write more than {MAX_TEXT_BYTES // 2**20} MB of text (row {i}): "
                            f"is a loop or a * repeating text?")
        out.append(mapped)
    return out


def _list_of_dicts(value, i, column):
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise DataError(f"row {i}: {column!r} must be a list of messages ({{role, content}}), "
                        f"not {type(value).__name__}")
    return value


def check_rows(rows, text_field="text"):
    """Every row is something TRL can read, with text where text belongs; else say which row and column.
    (TRL decides the format per row, so each row is checked on its own.)"""
    for i, r in enumerate(rows):
        if row_type(r).endswith("prompt_completion"):
            prompt, completion = r.get("prompt"), r.get("completion")
            if isinstance(prompt, list) or isinstance(completion, list):
                for column in ("prompt", "completion"):
                    _check_messages(r.get(column), i, column)
            else:
                for column, value in (("prompt", prompt), ("completion", completion)):
                    if not isinstance(value, str):
                        raise DataError(f"row {i}: {column!r} must be text, not {type(value).__name__}")
        elif "messages" in r:
            _check_messages(r["messages"], i, "messages")
        elif text_field in r:
            if not isinstance(r[text_field], str):
                raise DataError(f"row {i}: {quoted(text_field)} must be text, not {type(r[text_field]).__name__}")
        else:
            raise DataError(f"row {i} has no {quoted(text_field)}, no prompt/completion and no messages "
                            f"(its columns: {column_list(r)}); every row needs the same shape")
    return rows


def _check_messages(value, i, column):
    for k, m in enumerate(_list_of_dicts(value, i, column)):
        if not isinstance(m.get("role"), str):
            raise DataError(f"row {i}: message {k} of {column!r} has no text 'role'")
        if not isinstance(m.get("content"), str):
            raise DataError(f"row {i}: message {k} of {column!r}: 'content' must be text, not "
                            f"{type(m.get('content')).__name__}")
