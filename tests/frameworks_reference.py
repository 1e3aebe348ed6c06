"""The oracle for the Export table's other trainers: Axolotl's and LLaMA-Factory's own label-building code, run
in their venvs (scripts/test.sh makes .venv-axolotl and .venv-llamafactory; both see the project's transformers
5.24 and add only the framework and the few small packages its import needs).

    .venv-axolotl/bin/python tests/frameworks_reference.py axolotl cases.json results.json

Each case: {"rows" (messages chats), "tokenizer" (a folder), "train_on_inputs" (the framework's switch for the
whole text), "settings" (extra keyword settings)}. Each result: {"records": [{"input_ids", "labels"}]}.
"""

import json
import os
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # LLaMA-Factory 0.9.5 pins transformers <= 5.6.0


def axolotl(case):
    """Axolotl's `type: chat_template` dataset strategy, with roles_to_train [assistant] and train_on_eos turn
    (its defaults), the tokenizer's own chat template."""
    from axolotl.prompt_strategies.chat_template import load
    from axolotl.utils.dict import DictDefault
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(case["tokenizer"])
    cfg = DictDefault({"train_on_inputs": case["train_on_inputs"], "sequence_len": 100_000,
                       "chat_template": "tokenizer_default", **case.get("settings", {})})
    strategy = load(tok, cfg, {"type": "chat_template", "field_messages": "messages",
                               "roles_to_train": ["assistant"], "train_on_eos": "turn"})
    out = [strategy.tokenize_prompt(dict(row)) for row in case["rows"]]
    return [{"input_ids": list(o["input_ids"]), "labels": list(o["labels"])} for o in out]


def llamafactory(case):
    """LLaMA-Factory's supervised preprocessing (SupervisedDatasetProcessor) with its `phi` template, the data as a
    sharegpt-style dataset with role/content tags."""
    import transformers  # noqa: F401 - let transformers look for torchaudio before the stub below
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # mm_plugin imports it; only audio uses it
    from llamafactory.data.converter import SharegptDatasetConverter
    from llamafactory.data.parser import DatasetAttr
    from llamafactory.data.processor.supervised import SupervisedDatasetProcessor
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(case["tokenizer"])
    args = DataArguments(template=case.get("settings", {}).get("template", "phi"), cutoff_len=100_000,
                         train_on_prompt=case["train_on_inputs"], mask_history=False)
    template = get_template_and_fix_tokenizer(tok, args)
    processor = SupervisedDatasetProcessor(template=template, tokenizer=tok, processor=None, data_args=args)
    convert = SharegptDatasetConverter(DatasetAttr("file", "chats", formatting="sharegpt", messages="messages",
                                                   role_tag="role", content_tag="content", user_tag="user",
                                                   assistant_tag="assistant", system_tag="system"), args)
    aligned = [convert(row) for row in case["rows"]]
    out = processor.preprocess_dataset({k: [a[k] for a in aligned] for k in aligned[0]})
    return [{"input_ids": list(i), "labels": list(lab)} for i, lab in zip(out["input_ids"], out["labels"])]


def main():
    framework, cases, results = sys.argv[1:4]
    with open(cases, encoding="utf-8") as f:
        cases = json.load(f)
    run = {"axolotl": axolotl, "llamafactory": llamafactory}[framework]
    with open(results, "w", encoding="utf-8") as f:
        json.dump([{"records": run(case)} for case in cases], f)


if __name__ == "__main__":
    main()
