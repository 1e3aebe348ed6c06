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
    pt = train.PairedTraining(rows(), tok, small(prompt_weight=0.1))
    assert pt.names == ["whole", "completion", "weighted"]
    for name, stacked in pt.runs.params.items():  # every run's slice of every parameter is the initial one
        assert all(torch.equal(stacked[r], pt.initial_state[name]) for r in range(3))
    plan = pt.plan
    for step in range(plan.config.steps):
        x, am, w = pt.batch(step)
        idx = plan.batches[step]
        x1, m1, y1 = train.tensors([plan.train_ids[i] for i in idx], [plan.train_labels["whole"][i] for i in idx],
                                   plan.pad_id)
        x2, m2, y2 = train.tensors([plan.train_ids[i] for i in idx],
                                   [plan.train_labels["completion"][i] for i in idx], plan.pad_id)
        assert torch.equal(x, x1) and torch.equal(x1, x2) and torch.equal(m1, m2)  # one batch for every run
        assert torch.equal(w[0], (y1 != IGNORE).float()) and torch.equal(w[1], (y2 != IGNORE).float())
        assert (y2 != IGNORE).sum() < (y1 != IGNORE).sum()  # only the labels differ
        assert torch.equal(y2[y2 != IGNORE], x2[y2 != IGNORE])
        # the weighted run: answer tokens 1, other attended tokens 0.1, padding 0
        assert set(w[2][y2 != IGNORE].tolist()) == {1.0}
        assert torch.allclose(w[2][(y2 == IGNORE) & (m2 == 1)], torch.tensor(0.1))
        assert set(w[2][m2 == 0].tolist()) <= {0.0}


def test_each_runs_loss_is_its_own_models_loss_and_the_weighted_run_is_the_weighted_mean(tok):
    pt = train.PairedTraining(rows(), tok, small(prompt_weight=0.25))
    plan = pt.plan
    for step in range(3):  # after some fused steps too: the runs have moved apart
        x, am, w = pt.batch(step)
        with torch.no_grad():
            fused = pt.runs.losses(pt.runs.logits(x, am), x, w).tolist()
        idx = plan.batches[step]
        for r, name in enumerate(pt.names):
            model = pt.runs.model(r)
            with torch.no_grad():
                logits = model(input_ids=x, attention_mask=am).logits
                nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none")
                if name == "weighted":
                    _, _, ya = train.tensors([plan.train_ids[i] for i in idx], [plan.answer_labels[i] for i in idx],
                                             plan.pad_id)
                    weight = torch.where(ya[:, 1:] != IGNORE, 1.0, 0.25 * am[:, 1:].float())
                    own = ((nll * weight).sum() / weight.sum()).item()  # weighted sum / the weights' sum
                else:
                    _, _, y = train.tensors([plan.train_ids[i] for i in idx],
                                            [plan.train_labels[name][i] for i in idx], plan.pad_id)
                    own = model(input_ids=x, attention_mask=am, labels=y).loss.item()  # HF's own loss
            assert fused[r] == pytest.approx(own, rel=1e-5), (step, name)
        reported = pt.runs.step(x, am, w)
        assert reported == pytest.approx(fused, rel=1e-6)
    # the runs are independent: the same step, with run 0 alone, moves run 0 exactly the same way
    alone = train.Runs(train.build_model(plan), ["whole"], "cpu", plan.config.learning_rate)
    both = train.Runs(train.build_model(plan), ["whole", "completion"], "cpu", plan.config.learning_rate)
    for step in range(3):
        x, am, w = pt.batch(step)
        a, b = alone.step(x, am, w[:1]), both.step(x, am, w[:2])
        assert a[0] == pytest.approx(b[0], rel=1e-5)
    for name in alone.params:
        assert torch.allclose(alone.params[name][0], both.params[name][0], atol=1e-5)


def test_logits_only_where_a_run_has_weight_give_the_same_losses_and_gradients(tok):
    pt = train.PairedTraining(rows(), tok, small(prompt_weight=0.25))
    runs = pt.runs
    assert runs.head == "model.embed_tokens.weight"  # the tiny Llama's output layer is tied to its embeddings
    x, am, w = pt.batch(0)
    assert (w[1] == 0).sum() > (w[0] == 0).sum() > 0  # the answer-only run skips the prompt, both skip padding
    grads = []
    for loss in (lambda: runs.losses(runs.logits(x, am), x, w), lambda: runs.loss(x, am, w)):
        runs.optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.sum().backward()
        grads.append((value.detach(), {k: p.grad.clone() for k, p in runs.params.items()}))
    (full, g_full), (gathered, g_gathered) = grads
    assert torch.allclose(full, gathered, rtol=1e-6)
    for k in g_full:
        assert torch.allclose(g_full[k], g_gathered[k], rtol=1e-4, atol=1e-7), k


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


def test_the_weighted_run_trains_alongside_and_is_refused_outside_0_to_1(tok):
    with train.PairedTraining(rows(), tok, small(prompt_weight=0.1)) as pt:
        events = collect(pt)
        final = pt.results()
    assert {m for m, *_ in events} == {"whole", "completion", "weighted"}
    assert set(final["generations"][0]["outputs"]) == {"whole", "completion", "weighted"}
    for bad in (-0.1, 1.5, float("nan"), True, "0.1"):
        with pytest.raises(train.TrainError, match="prompt loss weight"):
            small(prompt_weight=bad)


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


def test_a_model_other_than_llama_goes_through_its_own_forward(tok, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=256)) \
        .save_pretrained(tmp_path)
    with train.PairedTraining(rows(), tok, small(model=str(tmp_path))) as pt:
        assert pt.runs.head is None  # its logits may be more than lm_head(hidden): not ours to assume
        assert {m for m, *_ in collect(pt)} == {"whole", "completion"}


def test_cli_train_json():
    r = subprocess.run([sys.executable, "-m", "sftviz", "train", "quiz_prompt_completion", "--steps", "10",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    points = recs[:-1]
    assert {p["mode"] for p in points} == {"whole", "completion"}
    assert all(set(p) == {"step", "mode", "train_loss", "eval_answer_loss", "eval_prompt_loss"} for p in points)
    assert recs[-1]["record"] == "final" and recs[-1]["generations"]


def test_runs_split_over_threads_train_the_same_as_one_stack(tok):
    out = {}
    for threads in (1, 2):
        with train.PairedTraining(rows(), tok, small(threads=threads, prompt_weight=0.1)) as pt:
            assert len(pt.groups) == min(threads, 3)
            out[threads] = sorted(collect(pt), key=lambda e: (e[0], e[1], e[2] is None))
    assert [e[:2] for e in out[1]] == [e[:2] for e in out[2]]
    for a, b in zip(out[1], out[2]):
        for x, y in zip(a[2:], b[2:]):
            assert x == y if x is None or y is None else x == pytest.approx(y, rel=1e-4)
    assert not [t for t in threading.enumerate() if t.name.startswith("sftviz-train")]
