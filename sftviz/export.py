"""Hand-off to a real training run: what sftviz showed, as a TRL script, a `trl sft` YAML config, and the
matching settings of other trainers.

The script loads the same data the same way (the mapping template as a `datasets.map` in Jinja's
sandbox), and sets the SFTConfig fields that decide the labels (mode, max_length, packing) exactly as
sftviz used them, so TRL's dataloader yields the labels sftviz showed (tests/test_export.py trains with it).
"""

import json
import os

import yaml

from . import TRL_VERSION, data
from .labels import IGNORE, MODES, Options, TRLRefusal, answers_only, not_for, prepare, row_type
from .markers import RULES


def dataset_call(source, config=None, split="train", shown_path=None):
    """The `datasets.load_dataset(...)` call for a source, as Python source code. `shown_path` replaces a
    local file's path (the page shows the visitor's file name, never a path on the server)."""
    if source in data.samples():
        source = data.samples()[source]
    if os.path.isfile(source):
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}[
            os.path.splitext(source)[1].lower()]
        return f'load_dataset({kind!r}, data_files={shown_path or os.path.abspath(source)!r}, split="train")'
    args = [repr(source)] + ([repr(config)] if config else [])
    return f"load_dataset({', '.join(args)}, split={split!r})"


def tokenizer_line(name):
    """The script's TOKENIZER line: a Hub id or folder as given; sftviz's bundled tokenizer is built by sftviz."""
    from .tokenizer import DEFAULT_NAME
    if (name or DEFAULT_NAME) == DEFAULT_NAME:
        return ("from sftviz.tokenizer import default_path  # sftviz's bundled tokenizer (run beside sftviz)\n"
                "TOKENIZER = default_path()")
    return f"TOKENIZER = {name!r}"


def config_fields(options, first_row=None):
    """The SFTConfig fields of these options; dataset_text_field only where TRL reads it (rows of plain text):
    `first_row` is the first row as TRL gets it (None: keep every field)."""
    fields = options.sft_config
    if first_row is not None and row_type(first_row) != "language_modeling":
        del fields["dataset_text_field"]
    return fields


def script(source, tokenizer, options, mapping=None, model="your-org/your-model", config=None, split="train",
           shown_path=None, drop=(), first_row=None):
    """A runnable Python script: load + map the data (or drop the columns in `drop`), SFTConfig with these
    options, SFTTrainer."""
    fields = ",\n        ".join(f"{k}={v!r}" for k, v in config_fields(options, first_row).items())
    mapping_code = ""
    if mapping is not None:
        mapping_code = f'''

# The mapping template sftviz applied: each row -> prompt/completion, rendered in Jinja's sandbox.
PROMPT_TEMPLATE = {mapping.prompt!r}
COMPLETION_TEMPLATE = {mapping.completion!r}


def to_prompt_completion(row):
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(keep_trailing_newline=True, undefined=StrictUndefined)
    return {{"prompt": env.from_string(PROMPT_TEMPLATE).render(row),
            "completion": env.from_string(COMPLETION_TEMPLATE).render(row)}}
'''
    map_call = ("\n    dataset = dataset.map(to_prompt_completion, remove_columns=dataset.column_names)"
                if mapping is not None else "")
    if drop:
        map_call += (f"\n    dataset = dataset.remove_columns({list(drop)!r})  # else TRL takes the prompt-completion "
                     f"path and stops (KeyError: 'completion')")
    return f'''"""SFT with TRL {TRL_VERSION}: the data, tokenizer and label settings shown in sftviz.

Mode: {MODES[options.mode].label} ({MODES[options.mode].meaning}).{other_trainer_note(options)}
Run: python this_script.py            Several GPUs: accelerate launch this_script.py
"""

import torch
from datasets import load_dataset
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

MODEL = {model!r}
{tokenizer_line(tokenizer)}
{mapping_code}

def load_data():
    dataset = {dataset_call(source, config, split, shown_path)}{map_call}
    return dataset


def make_config(**overrides):
    """The fields that decide the labels are the ones sftviz showed; the rest are TRL's defaults."""
    settings = dict(
        output_dir="sft-output",
        {fields},
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def build_trainer(**overrides):
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    return SFTTrainer(model=MODEL, args=make_config(**overrides), train_dataset=load_data(),
                      processing_class=tokenizer)


if __name__ == "__main__":
    build_trainer().train()
'''


def other_trainer_note(options, prefix=""):
    """Under another trainer's rules: this file is TRL 1.16 with the mode above, not that trainer's labels."""
    if options.rules == "trl":
        return ""
    return (f"\n{prefix}sftviz showed {RULES[options.rules].label}'s labels; this is TRL {TRL_VERSION} with the mode above."
            f"\n{prefix}Which TRL {TRL_VERSION} setting gives the same labels: the Export table (export --format table).")


def yaml_config(source, options, mapping=None, model="your-org/your-model", config=None, split="train", drop=(),
                first_row=None):
    """A `trl sft --config config.yaml` file with the same SFTConfig fields."""
    fields = {"model_name_or_path": model}
    if mapping is None and not drop and source not in data.samples() and not os.path.isfile(source):
        fields.update(dataset_name=source, dataset_train_split=split)
        if config:
            fields["dataset_config"] = config
    fields.update(config_fields(options, first_row))
    fields["output_dir"] = "sft-output"
    head = (f"# trl sft --config this.yaml   (TRL {TRL_VERSION}; several GPUs: add --accelerate_config multi_gpu,\n"
            f"# or zero2 / fsdp2: trl sft launches itself through accelerate)\n"
            f"# Mode: {MODES[options.mode].label}.{other_trainer_note(options, '# ')}\n")
    if "dataset_name" not in fields:
        head += ("# The data: this file has no dataset_name because the data is local or needs the mapping\n"
                 "# template (or a column dropped); load and map it with the exported script's load_data(), then\n"
                 "# dataset.save_to_disk(...) or push it to the Hub, and set dataset_name here.\n")
    return head + yaml.safe_dump(fields, sort_keys=False)


FRAMEWORKS = [  # (trainer, setting, for answer only / assistant only, for whole text, what checks it)
    ("TRL SFTTrainer", "completion_only_loss / assistant_only_loss", "True / True", "False / False",
     f"checked: its real code, tests/test_labels_vs_trl.py (TRL {TRL_VERSION})"),
    ("TRL 0.19 (removed in 0.20)", "DataCollatorForCompletionOnlyLM(response_template, instruction_template)",
     "pass the markers", "do not use it", "checked: sftviz's TRL 0.19 rules give the labels of its real code "
     "(tests/test_other_trainers.py, trl 0.19.1); pick it as the Trainer to see them, and this tab then says which "
     "TRL 1.16 setting gives the same labels on your data"),
    ("Unsloth", "train_on_responses_only(trainer, instruction_part=..., response_part=...)",
     "call it with the template's user and assistant headers", "do not call it",
     "checked: sftviz's Unsloth rules give the labels of its real code (tests/test_other_trainers.py, unsloth_zoo "
     "2026.10.9); pick it as the Trainer to see them, and this tab then says which TRL 1.16 setting gives the same "
     "labels on your data"),
    ("Axolotl", "train_on_inputs; roles_to_train; train_on_eos", "false; [assistant]; turn",
     "true; all roles; all", "checked (axolotl 0.19.0, type chat_template, tests/test_frameworks.py): answers only "
     "is assistant_only_loss exactly with `eot_tokens: ['<|end|>']` (Phi-3); with the default eot_tokens each "
     "answer's end-of-turn is not trained. train_on_inputs: true does not train the role tokens"),
    ("LLaMA-Factory", "train_on_prompt; mask_history", "false; false (true: last turn only)", "true; false",
     "checked (llamafactory 0.9.5, template phi, tests/test_frameworks.py): not the same tokens as TRL: it trains "
     "the newline after each answer's `<|end|>`, tokenizes each answer on its own, and adds no `<|endoftext|>`"),
    ("torchtune", "train_on_input", "False", "True", "not checked: as documented"),
]


VERDICTS = {  # what tests/test_*.py measured, in a few words: the row's labels against TRL 1.16's mode
    "TRL SFTTrainer": "checked: these are TRL 1.16's labels",
    "TRL 0.19 (removed in 0.20)": "shown exactly (Trainer choice); vs TRL 1.16: depends on the data, see below",
    "Unsloth": "shown exactly (Trainer choice); vs TRL 1.16: depends on the data, see below",
    "Axolotl": "checked: identical with eot_tokens set (see below)",
    "LLaMA-Factory": "checked: differs (see below)"}


def frameworks_table(options, first_row, migration_md=""):
    """The same choice in other trainers, as a Markdown table, for data whose first row is `first_row` (what
    TRL's default mode trains depends on the data); under another trainer's rules, `migration_md` (migration())
    says which TRL 1.16 settings give the same labels."""
    answer_only = answers_only(options.mode, first_row)
    lines = ["| trainer | setting | answer / assistant only | whole text | labels checked? |", "|---|---|---|---|---|"]
    notes = []
    for name, setting, answer, whole, checked in FRAMEWORKS:
        short = VERDICTS.get(name, "not checked")
        lines.append(f"| {name} | `{setting}` | {answer} | {whole} | {short} |")
        notes.append(f"- **{name}**: {checked}")
    lines += ["", *notes, ""]
    shown = f"{'answers only' if answer_only else 'the whole text'} ({json.dumps(MODES[options.mode].sft_config)})" \
        if options.rules == "trl" else f"{RULES[options.rules].label}'s marker search (below: the TRL 1.16 setting " \
        f"closest to it)"
    lines.append(f"These options: {shown}. Names as documented by each project; check "
                 f"your version, defaults differ between releases. \"Checked\" rows are compared token by token "
                 f"with the project's own code in sftviz's tests.")
    if migration_md:
        lines += ["", migration_md]
    return "\n".join(lines)


MIGRATION_ROWS = 200  # rows the page compares (the CLI compares every row it loads)
SHOWN_DIFFERENCES = 8


def split_at_marker(rows, marker, text_field="text"):
    """Plain-text rows as prompt/completion, split where the collator's search ends (after the LAST occurrence
    of the marker text): TRL's documented way off DataCollatorForCompletionOnlyLM. None if a row has no text."""
    out = []
    for row in rows:
        text = row.get(text_field)
        if not isinstance(text, str):
            return None
        at = text.rfind(marker)
        cut = at + len(marker) if at >= 0 else len(text)
        out.append({"prompt": text[:cut], "completion": text[cut:]})
    return out


def migration(rows, tok, options, most=MIGRATION_ROWS):
    """From another trainer's marker search to TRL 1.16: the SFTConfig (and, for plain text, the prompt/completion
    split at the marker) whose labels are closest, checked row by row against the marker rules' labels, with
    the exact tokens that differ. Markdown."""
    first_rows = " (the first rows)" if len(rows) > most else ""
    rows = rows[:most]
    label = RULES[options.rules].label
    try:
        theirs = prepare(rows, tok, options).sequences
    except TRLRefusal as e:  # e.g. Unsloth masks every one of these rows (not every row of the data)
        return f"No comparison with TRL {TRL_VERSION}: on the first {len(rows)} rows, {label} refuses: {e}"
    candidates = []
    for mode in ("completion", "assistant", "whole"):
        if not_for(mode, rows[0]) is None:
            candidates.append((f"SFTConfig({_flags(mode)}) on the data as it is", rows, mode))
    if row_type(rows[0]) == "language_modeling" and not options.response.strip().startswith("["):
        split = split_at_marker(rows, options.response, options.text_field)
        if split:
            candidates.insert(0, (f"SFTConfig({_flags('completion')}) on the text split into prompt/completion "
                                  f"after the last {options.response!r}", split, "completion"))
    best = None
    for words, data_rows, mode in candidates:
        try:
            ours = prepare(data_rows, tok, Options(mode, options.max_length, text_field=options.text_field)).sequences
        except (TRLRefusal, ValueError):
            continue
        same, differences = _compare(theirs, ours, tok)
        if best is None or same > best[1]:
            best = (words, same, differences)
    if best is None:
        return f"No TRL 1.16 setting applies to this data to replace {label}."
    words, same, differences = best
    head = (f"**To TRL {TRL_VERSION}**: {words} gives the labels {label} gives on **{same} of {len(rows)}** "
            f"rows{first_rows}.")
    if not differences:
        return head + " Identical: switch with no change to what is trained."
    shown = "\n".join(f"- {d}" for d in differences[:SHOWN_DIFFERENCES])
    more = f"\n- … and {len(differences) - SHOWN_DIFFERENCES} more" if len(differences) > SHOWN_DIFFERENCES else ""
    return f"{head} The tokens that will differ:\n{shown}{more}"


def _flags(mode):
    return ", ".join(f"{k}={v}" for k, v in MODES[mode].sft_config.items() if v is not None)


def _compare(theirs, ours, tok):
    """(rows identical, one line per difference) between two labellings of the same rows."""
    same, lines = 0, []
    for i, (a, b) in enumerate(zip(theirs, ours)):
        if a.dropped != b.dropped:
            lines.append(f"row {i}: {'dropped' if a.dropped else 'kept'} here, {'dropped' if b.dropped else 'kept'} "
                         f"by TRL 1.16")
            continue
        if a.input_ids != b.input_ids:
            k = next((p for p, (x, y) in enumerate(zip(a.input_ids, b.input_ids)) if x != y),
                     min(len(a.input_ids), len(b.input_ids)))
            lines.append(f"row {i}: the tokens differ from position {k} ({_tokens(tok, a.input_ids[k:k + 3])} here, "
                         f"{_tokens(tok, b.input_ids[k:k + 3])} with TRL 1.16)")
            continue
        diff = [p for p, (x, y) in enumerate(zip(a.labels, b.labels)) if x != y]
        if not diff:
            same += 1
            continue
        trained = [p for p in diff if b.labels[p] != IGNORE]
        masked = [p for p in diff if b.labels[p] == IGNORE]
        parts = ([f"TRL 1.16 also trains {_tokens(tok, [a.input_ids[p] for p in trained])} (positions "
                  f"{_positions(trained)})"] if trained else []) + \
                ([f"TRL 1.16 does not train {_tokens(tok, [a.input_ids[p] for p in masked])} (positions "
                  f"{_positions(masked)})"] if masked else [])
        lines.append(f"row {i}: " + "; ".join(parts))
    return same, lines


def _tokens(tok, ids, most=6):
    """The tokens as the page shows them (whitespace visible), in a Markdown code span."""
    from .tokenizer import token_texts
    shown = " ".join(token_texts(tok, ids[:most])).replace("`", "'")
    return f"`{shown}`" + (" …" if len(ids) > most else "")


def _positions(ps, most=6):
    return ", ".join(map(str, ps[:most])) + (", …" if len(ps) > most else "")
