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
from .labels import MODES, answers_only, row_type


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

Mode: {MODES[options.mode].label} ({MODES[options.mode].meaning}).
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
            f"# Mode: {MODES[options.mode].label}.\n")
    if "dataset_name" not in fields:
        head += ("# The data: this file has no dataset_name because the data is local or needs the mapping\n"
                 "# template (or a column dropped); load and map it with the exported script's load_data(), then\n"
                 "# dataset.save_to_disk(...) or push it to the Hub, and set dataset_name here.\n")
    return head + yaml.safe_dump(fields, sort_keys=False)


FRAMEWORKS = [  # (trainer, setting, for answer only / assistant only, for whole text)
    ("TRL SFTTrainer", "completion_only_loss / assistant_only_loss", "True / True", "False / False"),
    ("Axolotl", "train_on_inputs; roles_to_train; train_on_eos", "false; [assistant]; turn",
     "true; all roles; all"),
    ("LLaMA-Factory", "train_on_prompt; mask_history", "false; false (true: last turn only)", "true; false"),
    ("torchtune", "train_on_input", "False", "True"),
    ("Unsloth", "train_on_responses_only(trainer, instruction_part=..., response_part=...)",
     "call it with the template's user and assistant headers", "do not call it"),
]


def frameworks_table(options, first_row):
    """The same choice in other trainers, as a Markdown table, for data whose first row is `first_row` (what
    TRL's default mode trains depends on the data)."""
    answer_only = answers_only(options.mode, first_row)
    lines = ["| trainer | setting | answer / assistant only | whole text |", "|---|---|---|---|"]
    for name, setting, answer, whole in FRAMEWORKS:
        lines.append(f"| {name} | `{setting}` | {answer} | {whole} |")
    lines.append("")
    lines.append(f"These options: {'answers only' if answer_only else 'the whole text'} "
                 f"({json.dumps(MODES[options.mode].sft_config)}). Names as documented by each project; check "
                 f"your version, defaults differ between releases.")
    return "\n".join(lines)
