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
from dataclasses import dataclass

from . import hub, one_line
from .tokenizer import ASSETS

SAMPLES_DIR = os.path.join(ASSETS, "samples")
DEFAULT_SAMPLE = "quiz_prompt_completion"
EXTENSIONS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    """The data could not be loaded or understood; the message says why, in one line."""


def samples():
    """Bundled sample names -> file paths."""
    paths = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.*")))
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths if os.path.splitext(p)[1] in EXTENSIONS}


def load(source, config=None, split="train", limit=None):
    """A bundled sample name, a local file, or a Hub dataset id -> list of row dicts."""
    import datasets

    datasets.disable_progress_bars()
    source = (source or "").strip()
    if not source:
        raise DataError("no dataset given")
    path = samples().get(source, source)
    try:
        if os.path.isfile(path):
            ext = os.path.splitext(path)[1].lower()
            if ext not in EXTENSIONS:
                raise DataError(f"{os.path.basename(path)}: unsupported file type {ext or '(none)'}; "
                                f"use {', '.join(EXTENSIONS)}")
            ds = datasets.load_dataset(EXTENSIONS[ext], data_files=path, split="train")
        elif os.path.isdir(path):
            ds = datasets.load_dataset(path, config, split=split or "train")
        else:
            if "/" not in source and not source.replace("-", "").replace("_", "").isalnum():
                raise DataError(f"{source!r} is not a bundled sample, a file, or a Hub dataset id")
            if not hub.offline() and not hub.reachable():
                raise DataError(f"cannot load Hub dataset {source!r}: it is not a bundled sample or a local file, "
                                f"and the Hugging Face Hub is not reachable (offline)")
            ds = datasets.load_dataset(source, config, split=split or "train")
    except DataError:
        raise
    except Exception as e:
        msg = one_line(e)[:200]
        if not os.path.exists(path):
            raise DataError(f"cannot load Hub dataset {source!r} (the Hub is not reachable (offline), or there is "
                            f"no such dataset/config/split): {msg}") from None
        raise DataError(f"cannot read {os.path.basename(path)}: {msg}") from None
    if limit:
        ds = ds.select(range(min(int(limit), len(ds))))
    rows = ds.to_list()
    if not rows:
        raise DataError(f"{os.path.basename(path)}: the dataset is empty")
    return rows


def _is_messages(value, keys=("role", "content")):
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and set(keys) <= value[0].keys()


def detect(rows, text_field="text"):
    """The shape of the first row: a TRL type, or a shape we know how to map."""
    cols = set(rows[0])
    first = rows[0]
    if "prompt" in cols and "completion" in cols:
        return "conversational_prompt_completion" if _is_messages(first["prompt"]) else "prompt_completion"
    if _is_messages(first.get("messages")):
        return "conversational"
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
             text_field="text"):
    """The one loading path of the page and the CLI: source -> raw rows -> shape -> mapping -> TRL rows."""
    raw = load(source, config, split, limit)
    kind = detect(raw, text_field)
    mapping = choose_mapping(kind, raw[0], prompt_template or None, completion_template or None)
    if kind == "unknown":
        kind = "custom"
    return Loaded(source, raw, kind, mapping, to_trl(raw, kind, mapping, text_field))


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


def to_trl(rows, kind=None, mapping=None, text_field="text"):
    """Rows in TRL's format (unchanged if they already are). Raises DataError on unknown shapes."""
    kind = kind or detect(rows, text_field)
    if kind in TRL_TYPES:
        return rows
    if kind == "sharegpt":
        return [{"messages": [{"role": SHAREGPT_ROLES.get(str(m.get("from")).lower(), m.get("from")),
                               "content": m.get("value")} for m in r["conversations"]]} for r in rows]
    if mapping is None:
        if kind not in DEFAULT_MAPPINGS:
            raise NeedsMapping(rows[0])
        mapping = DEFAULT_MAPPINGS[kind]
    from jinja2 import StrictUndefined, TemplateError, UndefinedError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # StrictUndefined: a misspelled column is an error, not a silently empty prompt.
    env = ImmutableSandboxedEnvironment(keep_trailing_newline=True, undefined=StrictUndefined)
    try:
        p, c = env.from_string(mapping.prompt), env.from_string(mapping.completion)
        return [{"prompt": p.render(**r), "completion": c.render(**r)} for r in rows]
    except UndefinedError as e:
        raise DataError(f"template error: {e} (the row's columns: {', '.join(rows[0])})") from None
    except TemplateError as e:
        raise DataError(f"template error: {e}") from None
