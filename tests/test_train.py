import json
import subprocess
import sys
import threading

import pytest
import torch

from conftest import ROOT
from sftviz import data, train
from sftviz.labels import IGNORE
from sftviz.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("default")


def rows(name="quiz_prompt_completion"):
    return data.to_trl(data.load(name))


def small(**kw):
    return train.TrainConfig.preset("quick", **{"steps": 6, "eval_every": 3, "n_generate": 1, **kw})


def test_runs_start_from_identical_weights_and_see_identical_batches(tok):
    pt = train.PairedTraining(rows(), tok, small())
    a, b = (r.model.state_dict() for r in pt.runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], pt.initial_state[k]) for k in a)
    plan = pt.plan
    for step in range(plan.config.steps):
        idx = plan.batches[step]
        x1, m1, y1 = train.tensors([plan.train_ids[i] for i in idx], [plan.train_labels["whole"][i] for i in idx],
                                   plan.pad_id)
        x2, m2, y2 = train.tensors([plan.train_ids[i] for i in idx],
                                   [plan.train_labels["completion"][i] for i in idx], plan.pad_id)
        assert torch.equal(x1, x2) and torch.equal(m1, m2)  # same batch
        assert (y2 != IGNORE).sum() < (y1 != IGNORE).sum()  # only the labels differ
        assert torch.equal(y2[y2 != IGNORE], x2[y2 != IGNORE])


def test_train_loss_is_the_models_own_loss_with_per_token_averaging(tok):
    pt = train.PairedTraining(rows(), tok, small())
    run = pt.runs[1]
    idx = pt.plan.batches[0]
    x, am, y = train.tensors([pt.plan.train_ids[i] for i in idx],
                             [pt.plan.train_labels[run.mode][i] for i in idx], pt.plan.pad_id)
    with torch.no_grad():
        own = run.model(input_ids=x, attention_mask=am, labels=y).loss.item()
        logits = run.model(input_ids=x, attention_mask=am).logits
        shifted = y[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), shifted.clamp(min=0),
                                                reduction="none")
        manual = (nll * (shifted != IGNORE)).sum() / (shifted != IGNORE).sum()  # TRL: sum / num_items_in_batch
    opt = torch.optim.AdamW(run.model.parameters(), lr=1e-3)
    reported = run.train_step(opt, 0)
    assert reported == pytest.approx(own, rel=1e-6)
    assert reported == pytest.approx(manual.item(), rel=1e-5)


def collect(pt):
    return [(e["mode"], e["step"], e.get("train_loss"), e.get("eval_answer_loss"))
            for e in pt.events_until_done() if e["record"] in ("train", "eval")]


def test_fixed_seed_is_reproducible(tok):
    out = []
    for _ in range(2):
        with train.PairedTraining(rows(), tok, small(seed=3)) as pt:
            out.append(sorted(collect(pt), key=lambda e: (e[0], e[1], e[2] is None)))
    assert out[0] == out[1]


def test_answer_only_run_learns_within_quick_preset(tok):
    with train.PairedTraining(rows(), tok, train.TrainConfig.preset("quick")) as pt:
        evals = [e for e in pt.events_until_done() if e["record"] == "eval" and e["mode"] == "completion"]
        final = pt.results()
    assert evals[0]["step"] == 0 and evals[-1]["step"] == pt.config.steps
    assert evals[-1]["eval_answer_loss"] < 0.5 * evals[0]["eval_answer_loss"]
    gens = final["generations"]
    assert gens and set(gens[0]["outputs"]) == {"whole", "completion"}
    assert set(final["heatmap"]["losses"]) == {"whole", "completion"}


def test_stop_ends_every_thread(tok):
    pt = train.PairedTraining(rows(), tok, small(steps=20000))
    with pt:
        seen = 0
        while seen < 5:
            seen += len([e for e in pt.poll() if e["record"] == "train"])
    assert not pt.alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("sftviz-train")]


def test_conversational_assistant_vs_whole(tok):
    with train.PairedTraining(rows("quiz_chat"), tok, small(modes=("whole", "assistant"))) as pt:
        events = collect(pt)
    assert {m for m, *_ in events} == {"whole", "assistant"}


def test_pretrained_model_directory(tok, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(tmp_path)
    with train.PairedTraining(rows(), tok, small(model=str(tmp_path))) as pt:
        assert pt.plan.vocab is None
        assert collect(pt)
    with pytest.raises(train.TrainError, match="cannot load model"):
        train.PairedTraining(rows(), tok, small(model=str(tmp_path / "missing")))


def test_cli_train_json():
    r = subprocess.run([sys.executable, "-m", "sftviz", "train", "quiz_prompt_completion", "--steps", "10",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    points = recs[:-1]
    assert {p["mode"] for p in points} == {"whole", "completion"}
    assert all(set(p) == {"step", "mode", "train_loss", "eval_answer_loss", "eval_prompt_loss"} for p in points)
    assert recs[-1]["record"] == "final" and recs[-1]["generations"]
