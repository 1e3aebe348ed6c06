"""Datasets: load (bundled sample, local file, Hub id), detect TRL's type, map common shapes to TRL's format.

TRL's four dataset types (https://huggingface.co/docs/trl/dataset_formats):
    language_modeling                 {"text": "..."}
    prompt_completion                 {"prompt": "...", "completion": "..."}
    conversational                    {"messages": [{"role": ..., "content": ...}, ...]}
    conversational_prompt_completion  {"prompt": [messages], "completion": [messages]}
ShareGPT ({"conversations": [{"from", "value"}]}) is accepted by TRL too (renamed to messages).

Shapes people actually have are mapped to prompt/completion (or messages) with a visible, editable
Jinja template, so the user sees exactly what text the model gets:
    question_answer   {"question", "answer"}               e.g. GSM8K
    alpaca            {"instruction", "input", "output"}
    prompt_answer     {"prompt", "answer"} (+ maybe "text" = both glued together, ignored by the mapping)
    sharegpt          {"conversations": [{"from": "human"|"gpt", "value"}]} roles renamed to user/assistant
    custom            any other columns, with a prompt and a completion template written by the user

`load_trl()` is the one way in, for the page and the command line alike:
source -> raw rows -> shape -> mapping decision (`choose_mapping`) -> rows in TRL's format.
"""

import glob
import os
import re
from dataclasses import dataclass

from . import hub, one_line, readers
from .tokenizer import ASSETS

SAMPLES_DIR = os.path.join(ASSETS, "samples")
DEFAULT_SAMPLE = "quiz_prompt_completion"
EXTENSIONS = readers.EXTENSIONS


class DataError(ValueError):
    """The data could not be loaded or understood; the message says why, in one line."""


def samples():
    """Bundled sample names -> file paths."""
    paths = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.*")))
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths if os.path.splitext(p)[1] in EXTENSIONS}



def load(source, config=None, split="train", limit=None, where="any"):
    """A bundled sample, a local file or folder, or a Hub dataset id -> list of row dicts (at most `limit`).

    `where` says what the source may be: "any" (the command line, on the user's own machine), or, for the
    hosted page, "sample", "file" (a file the server itself wrote: the visitor's upload) or "hub" (a Hub
    id, never a path on the server)."""
    kind, source = resolve(source, config, split, where)
    try:
        return readers.read(source, limit) if kind == "file" else load_hub(source, config, split, limit)
    except readers.FileError as e:
        raise DataError(str(e)) from None


def resolve(source, config=None, split="train", where="any"):
    """("file", path) or ("dataset", a local dataset folder or Hub id): what `source` is allowed to be under
    `where` (see load). The one place these rules live: every reader of a visitor's source goes through it."""
    source = (source or "").strip()
    if not source:
        raise DataError("no dataset given")
    if where in ("any", "sample") and source in samples():
        return "file", samples()[source]
    if where == "sample":
        raise DataError(f"{source!r} is not a bundled sample; choose one of {', '.join(samples())}")
    if where == "file":
        if not os.path.isfile(source):
            raise DataError("the uploaded file is gone (uploads are deleted when the session ends): upload it again")
        return "file", source
    if where == "any" and os.path.isfile(source):
        return "file", source
    if where == "any" and os.path.isdir(source):
        return "dataset", source  # load_dataset reads a local folder as it reads a repo
    if where == "any" and (source.startswith((".", "/", "~")) or source.lower().endswith(EXTENSIONS)):
        raise DataError(f"{source!r} is not a bundled sample, a file or a folder")
    hub.check_id(source, "dataset", DataError)
    hub.check_config(config, "config")
    hub.check_config(split, "split")
    if not hub.reachable():
        raise DataError(hub.unavailable("dataset", source))
    return "dataset", source


MAX_HUB_BYTES = int(os.environ.get("SFTVIZ_MAX_HUB_MB", 64)) * 2**20  # read from a Hub dataset at most


def load_hub(source, config, split, limit):
    """Stream the first `limit` rows (and at most MAX_HUB_BYTES) of a Hub dataset or a local dataset folder:
    nothing is downloaded whole and nothing is written to the datasets cache."""
    import datasets

    datasets.disable_progress_bars()
    rows, size = [], 0
    try:
        for row in datasets.load_dataset(source, config, split=split or "train", streaming=True):
            rows.append(row)
            size += len(repr(row))
            if (limit and len(rows) >= limit) or size > MAX_HUB_BYTES:
                break
    except Exception as e:  # datasets raises many types for one meaning: this cannot be loaded
        if os.path.isdir(source):
            raise DataError(f"cannot read the dataset folder {os.path.basename(source)!r}: {one_line(e)[:200]}") \
                from None
        raise DataError(f"{hub.unavailable('dataset', source)} ({one_line(e)[:160]})") from None
    if not rows:
        raise DataError(f"{source}: the dataset has no rows")
    return rows


def _is_messages(value, keys=("role", "content")):
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and set(keys) <= value[0].keys()


def detect(rows, text_field="text"):
    """The shape of the first row: a TRL type, or a shape we know how to map."""
    cols = set(rows[0])
    first = rows[0]
    if "prompt" in cols and "completion" in cols:
        return "conversational_prompt_completion" if _is_messages(first["prompt"]) else "prompt_completion"
    if _is_messages(first.get("messages")) or isinstance(first.get("messages"), list):
        return "conversational"  # (messages without roles are then refused by check_rows, naming the row)
    if _is_messages(first.get("conversations"), ("from", "value")):
        return "sharegpt"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"question", "answer"} <= cols:
        return "question_answer"
    if {"prompt", "answer"} <= cols or {"prompt", "response"} <= cols:
        return "prompt_answer"
    if text_field in cols:
        return "language_modeling"
    return "unknown"


TRL_TYPES = ("language_modeling", "prompt_completion", "conversational", "conversational_prompt_completion")


class NeedsMapping(DataError):
    """The columns are no shape we know: the user must write the prompt and completion templates."""

    def __init__(self, columns):
        self.columns = list(columns)
        super().__init__(f"unrecognised columns {self.columns}: not a TRL format (text / prompt+completion / "
                         f"messages / conversations) nor question+answer / instruction+output / prompt+answer; "
                         f"write a prompt and a completion template with the columns as variables "
                         f"(or set the text field)")


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
    "prompt_answer": Mapping("{{ prompt }}", "{{ answer if answer is defined else response }}"),
}

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
    "alpaca": "Alpaca instruction/input/output: not a TRL format; mapped to prompt/completion with the template.",
    "question_answer": "question/answer: not a TRL format; mapped to prompt/completion with the template.",
    "prompt_answer": "prompt/answer: not a TRL format (TRL needs 'completion'; a ready-made 'text' column would "
                     "be trained as whole text); mapped to prompt/completion with the template.",
    "custom": "your own columns: mapped to prompt/completion with your templates.",
}


@dataclass
class Loaded:
    """A dataset on its way to TRL: the rows as read, their shape, the mapping used (if any), TRL's rows."""

    source: str
    raw: list
    kind: str
    mapping: Mapping | None
    rows: list


def load_trl(source, config=None, split="train", limit=None, prompt_template=None, completion_template=None,
             text_field="text", where="any"):
    """The one loading path of the page and the CLI: source -> raw rows -> shape -> mapping -> TRL rows."""
    raw = load(source, config, split, limit, where)
    kind = detect(raw, text_field)
    mapping = choose_mapping(kind, raw[0], prompt_template or None, completion_template or None)
    if kind == "unknown":
        kind = "custom"
    return Loaded(source, raw, kind, mapping, check_rows(to_trl(raw, kind, mapping, text_field), text_field))


def count_rows(source, config=None, split="train", where="any"):
    """About how many rows a file has (None when that is not known without reading it all: a Hub dataset)."""
    kind, path = resolve(source, config, split, where)
    return readers.count_rows(path) if kind == "file" else None


def iter_chunks(source, chunk_rows=10_000, config=None, split="train", limit=None, prompt_template=None,
                completion_template=None, text_field="text", where="any"):
    """load_trl for a dataset of any size: TRL-format rows in chunks of `chunk_rows`, streamed from a file
    (or a Hub dataset / local folder), mapped and checked chunk by chunk with the first chunk's decisions."""
    import itertools

    kind, source = resolve(source, config, split, where)
    if kind == "file":
        rows = readers.iter_rows(source)
    else:
        import datasets
        datasets.disable_progress_bars()
        rows = iter(datasets.load_dataset(source, config, split=split or "train", streaming=True))
    if limit:
        rows = itertools.islice(rows, limit)
    kind = mapping = None
    done = 0
    try:
        while True:
            chunk = list(itertools.islice(rows, chunk_rows))
            if not chunk:
                return
            if kind is None:
                kind = detect(chunk, text_field)
                mapping = choose_mapping(kind, chunk[0], prompt_template, completion_template)
                kind = "custom" if kind == "unknown" else kind
            try:
                yield check_rows(to_trl(chunk, kind, mapping, text_field), text_field)
            except DataError as e:  # say which row of the dataset, not of the chunk
                raise DataError(re.sub(r"row (\d+)", lambda m: f"row {int(m.group(1)) + done}", str(e), count=1)) \
                    from None
            done += len(chunk)
    except readers.FileError as e:
        raise DataError(str(e)) from None


def choose_mapping(kind, first_row, prompt_template=None, completion_template=None):
    """When a mapping template applies, and which one. The rule, the same everywhere:

    * data already in a TRL format (or ShareGPT, renamed) is used as it is, because that is what TRL
      gets: a template given for it is refused rather than silently ignored;
    * a shape we know (question/answer, Alpaca, prompt/answer) gets its default template, where the
      user's template (prompt, completion or both) replaces the default part by part;
    * other columns need both templates from the user."""
    if kind in DEFAULT_MAPPINGS:
        base = DEFAULT_MAPPINGS[kind]
        return Mapping(prompt_template or base.prompt, completion_template or base.completion)
    if kind == "unknown":
        if prompt_template and completion_template:
            return Mapping(prompt_template, completion_template)
        raise NeedsMapping(first_row)
    if prompt_template or completion_template:
        raise DataError(f"this data is already in TRL's {kind} format and TRL uses it as it is: a mapping template "
                        f"is for other shapes (question/answer, Alpaca, prompt/answer, your own columns)")
    return None


MAX_TEXT_BYTES = int(os.environ.get("SFTVIZ_MAX_TEXT_MB", 64)) * 2**20  # what mapping templates may write in all


def to_trl(rows, kind=None, mapping=None, text_field="text"):
    """Rows in TRL's format (unchanged if they already are). Raises DataError on unknown shapes."""
    kind = kind or detect(rows, text_field)
    if kind in TRL_TYPES:
        return rows
    if kind == "sharegpt":
        return [{"messages": [{"role": SHAREGPT_ROLES.get(str(m.get("from")).lower(), m.get("from")),
                               "content": m.get("value")} for m in _list_of_dicts(r.get("conversations"), i,
                                                                                  "conversations")]}
                for i, r in enumerate(rows)]
    if mapping is None:
        if kind not in DEFAULT_MAPPINGS:
            raise NeedsMapping(rows[0])
        mapping = DEFAULT_MAPPINGS[kind]
    return render_mapping(rows, mapping)


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
            raise DataError(f"template error: {e} (the row's columns: {', '.join(map(str, r))})") from None
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
        if "prompt" in r or "completion" in r:
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
                raise DataError(f"row {i}: {text_field!r} must be text, not {type(r[text_field]).__name__}")
        else:
            raise DataError(f"row {i} has no {text_field!r}, no prompt/completion and no messages "
                            f"(its columns: {', '.join(map(str, r))}); every row needs the same shape")
    return rows


def _check_messages(value, i, column):
    for k, m in enumerate(_list_of_dicts(value, i, column)):
        if not isinstance(m.get("role"), str):
            raise DataError(f"row {i}: message {k} of {column!r} has no text 'role'")
        if not isinstance(m.get("content"), str):
            raise DataError(f"row {i}: message {k} of {column!r}: 'content' must be text, not "
                            f"{type(m.get('content')).__name__}")
