"""The hand-off: the exported script trains with TRL on exactly the labels sftviz shows; the YAML, read by
TRL's own parser, gives the same SFTConfig fields."""

import importlib.util

from conftest import ROOT
from sftviz import cli, view
from sftviz.labels import Options


def export(capsys, tmp_path, *args, name="exported"):
    assert cli.main(["export", *args]) == 0
    path = tmp_path / name
    path.write_text(capsys.readouterr().out)
    return path


def test_exported_script_trains_on_the_labels_the_page_shows(capsys, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = view.load(view.ViewRequest("quiz_question_answer")).tok
    model_dir = tmp_path / "tiny-model"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(model_dir)
    path = export(capsys, tmp_path, "quiz_question_answer", "--mode", "completion", "--max-length", "48",
                  "--model", str(model_dir), name="sft_script.py")
    spec = importlib.util.spec_from_file_location("sft_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trainer = module.build_trainer(output_dir=str(tmp_path / "out"), max_steps=2, report_to="none",
                                   save_strategy="no", logging_strategy="no", use_cpu=True, bf16=False,
                                   gradient_checkpointing=False)
    seen = []
    for batch in trainer.get_train_dataloader():  # every row, as TRL's dataloader hands it to the model
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            n = int(mask.sum())
            seen.append((ids[:n].tolist(), labels[:n].tolist()))
    shown = view.open_view(view.ViewRequest("quiz_question_answer", options=Options("completion", 48)))
    page = [(s.input_ids, s.labels) for s in shown.prep.sequences if not s.dropped]
    assert sorted(seen) == sorted(page) and len(page) > 100
    assert any(lab != -100 for _, labels in page for lab in labels)
    result = trainer.train()
    assert result.global_step == 2


def test_exported_yaml_gives_the_same_sftconfig(capsys, tmp_path):
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser
    for args, expected in (
            (["quiz_chat", "--mode", "assistant", "--max-length", "512"],
             dict(assistant_only_loss=True, completion_only_loss=None, max_length=512, packing=False)),
            (["quiz_prompt_completion", "--mode", "whole", "--packing", "--packing-strategy", "wrapped",
              "--max-length", "128"],
             dict(completion_only_loss=False, assistant_only_loss=False, max_length=128, packing=True,
                  packing_strategy="wrapped"))):
        path = export(capsys, tmp_path, *args, "--format", "yaml", "--model", "some/model", name="config.yaml")
        script_args, config, model_args = TrlParser((ScriptArguments, SFTConfig, ModelConfig)).parse_args_and_config(
            args=["--config", str(path), "--bf16", "False"])
        assert model_args.model_name_or_path == "some/model"
        for key, value in expected.items():
            assert getattr(config, key) == value, (key, args)


def test_other_trainers_table_and_refusals(capsys):
    assert cli.main(["export", "quiz_prompt_completion", "--format", "table"]) == 0
    table = capsys.readouterr().out
    for setting in ("train_on_inputs", "roles_to_train", "train_on_eos", "train_on_prompt", "mask_history",
                    "train_on_input", "train_on_responses_only"):
        assert setting in table
    # what TRL would refuse is refused before anything is exported
    assert cli.main(["export", "quiz_prompt_completion", "--mode", "assistant"]) == 2
    assert "not conversational" in capsys.readouterr().err


def test_the_page_offers_the_export(hosted_app):
    from conftest import page_form
    out = hosted_app.refresh(page_form(**{"max-length": 64}))
    assert "completion_only_loss=None" in out["export-script"] and "max_length=64" in out["export-script"]
    assert "max_length: 64" in out["export-yaml"] and "train_on_inputs" in out["export-table"]
    # files named as the visitor knows them, never a path on the server
    assert "data_files='assets/samples/quiz_prompt_completion.jsonl'" in out["export-script"]
    assert str(ROOT) not in out["export-script"] and "/root" not in out["export-script"]


def test_the_trainers_table_says_what_trls_default_trains_on_this_data(capsys):
    """TRL's default trains the whole text on chats and plain text, the answer only on prompt-completion data."""
    from sftviz import cli
    for sample, trained in (("quiz_chat", "the whole text"), ("quiz_prompt_completion", "answers only")):
        assert cli.main(["export", sample, "--format", "table"]) == 0
        assert f"These options: {trained}" in capsys.readouterr().out
