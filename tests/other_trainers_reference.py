"""The oracle for the other trainers' labels: their real code, run in their own virtualenv (scripts/test.sh makes
them: .venv-trl019 has trl==0.19.1, .venv-unsloth has unsloth_zoo==2026.10.9; both see the project's
transformers 5.24, so both sides tokenize alike).

    .venv-trl019/bin/python tests/other_trainers_reference.py trl-0.19 cases.json results.json

Each case: {"rows", "tokenizer" (a folder), "max_length", "text_field", "response", "instruction"} (markers are
strings or lists of token ids). Each result: {"records": [{"input_ids", "labels"}] in the trainer's order,
"dropped": [source rows the trainer drops], "warnings": [what the library warned or printed], "error"}.
No training step is run: the trainer is built, its dataset prepared, and its collator called on each row
as a batch of one.
"""

import contextlib
import copy
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSLOTH_ZOO_DISABLE_GPU_INIT", "1")  # unsloth_zoo's own opt-out of its GPU setup
os.environ.setdefault("UNSLOTH_DATASET_NUM_PROC", "0")  # no worker processes
ROW = "oracle_source_row"


def tiny_model(tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                        max_position_embeddings=8192))


def config(case):
    from trl import SFTConfig

    return SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), "sftviz_other_oracle"), report_to="none",
                     use_cpu=True, bf16=False, save_strategy="no", logging_strategy="no",
                     max_length=case["max_length"], dataset_text_field=case.get("text_field", "text"),
                     dataset_num_proc=None)


def trl_019(case, tok):
    """TRL 0.19.1: SFTTrainer's own dataset preparation, then DataCollatorForCompletionOnlyLM."""
    import datasets
    from trl import SFTTrainer
    from trl.trainer.utils import DataCollatorForCompletionOnlyLM

    if tok.pad_token is None:  # the recipe every 0.19 example uses for GPT-2-like tokenizers
        tok.pad_token = tok.eos_token
    collator = DataCollatorForCompletionOnlyLM(case["response"], case.get("instruction"), tokenizer=tok)
    ds = datasets.Dataset.from_list([{**r, ROW: i} for i, r in enumerate(case["rows"])])
    trainer = SFTTrainer(model=tiny_model(tok), args=config(case), train_dataset=ds, processing_class=tok,
                         data_collator=collator)
    prepared = trainer.train_dataset
    dropped = sorted(set(range(len(case["rows"]))) - set(prepared[ROW]))
    rows = trainer._remove_unused_columns(prepared, description="training")
    records = []
    for i in range(len(rows)):
        batch = trainer.data_collator([rows[i]])
        records.append({k: batch[k][0].tolist() for k in ("input_ids", "labels")})
    return records, dropped


def unsloth(case, tok):
    """Unsloth: TRL's SFTTrainer with Unsloth's dataset preparation (what its trainer patches in), then
    train_on_responses_only(trainer, instruction_part, response_part)."""
    import datasets
    import trl
    from unsloth_zoo.dataset_utils import sft_prepare_dataset, train_on_responses_only

    trl.SFTTrainer._prepare_dataset = sft_prepare_dataset
    ds = datasets.Dataset.from_list(case["rows"])
    trainer = trl.SFTTrainer(model=tiny_model(tok), args=config(case), train_dataset=ds, processing_class=tok)
    before = [list(r) for r in trainer.train_dataset["input_ids"]]
    # Which rows the real masking leaves all -100 (Unsloth then filters them out; the filter keeps the order).
    label_fn = train_on_responses_only(None, case.get("instruction"), case["response"], tokenizer=tok,
                                       return_function=True)
    masked = [i for i, lab in enumerate(label_fn({"input_ids": before})["labels"]) if max(lab) == -100]
    train_on_responses_only(trainer, case.get("instruction"), case["response"])
    rows = trainer.train_dataset
    kept = [i for i in range(len(before)) if i not in masked]
    assert [list(r) for r in rows["input_ids"]] == [before[i] for i in kept], "Unsloth dropped other rows"
    rows = trainer._remove_unused_columns(rows, description="training")
    records = []
    for i in range(len(rows)):
        batch = trainer.data_collator([rows[i]])
        records.append({k: batch[k][0].tolist() for k in ("input_ids", "labels")})
    return records, masked


def run(rules, case):
    from transformers import AutoTokenizer

    tok = copy.deepcopy(AutoTokenizer.from_pretrained(case["tokenizer"]))
    if case.get("chat_template"):
        tok.chat_template = case["chat_template"]
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            records, dropped = (trl_019 if rules == "trl-0.19" else unsloth)(case, tok)
            error = None
        except Exception as e:  # noqa: BLE001 - the library's refusal is a result
            records, dropped, error = [], [], f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - started  # for benchmarks/bench_labels.py
    said = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    said += [out.getvalue()] if "Unsloth" in out.getvalue() else []  # its prints, continuation lines included
    return {"records": records, "dropped": dropped, "warnings": said, "error": error, "seconds": seconds}


def main():
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    rules, cases, results = sys.argv[1:4]
    with open(cases, encoding="utf-8") as f:
        cases = json.load(f)
    out = [run(rules, case) for case in cases]
    with open(results, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
