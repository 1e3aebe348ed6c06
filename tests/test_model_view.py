""""Real model" (what the model already knows): the real model's tab (sftviz.model_view). Its losses are transformers' own, its step-0
loss per mode is `model(input_ids, labels=labels).loss` for that mode's labels, SmolLM2's default system prompt
(put in by its chat template, in none of the rows) is flagged, the page refuses names it may not load, and in
Chromium the tab shows its loading state while Next keeps working."""

import time

import pytest

from conftest import page_form
from test_model_loss import smollm2


def loaded_smollm2():
    from sftviz import model_loss
    smollm2()  # installed (or skipped / failed as test_model_loss says)
    loading = model_loss.loading("smollm2")
    assert loading is not None and loading.done.wait(120) and loading.error is None, loading and loading.error
    return loading


@pytest.fixture
def one_thread_restored():
    """Loading the page's model puts this process's torch on one thread (model_loss.Loading): put it back."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_step0_loss_of_each_mode_is_the_loss_transformers_computes_and_the_system_prompt_is_flagged(
        one_thread_restored):
    import torch

    from sftviz import model_view, page
    loading = loaded_smollm2()
    request = page.page_request(page_form(sample="quiz_chat"))
    seq, texts, losses, flags, modes, mode_name = model_view.example_data(request, 2, "smollm2", loading)
    model = loading.model
    assert mode_name == "TRL default → whole text"
    whole = next(m for m in modes if m.name == "whole text")
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([seq.input_ids]), labels=torch.tensor([seq.labels])).loss.item()
    assert abs(whole.mean - expected) < 1e-4 and whole.count == len(seq.labels) - 1
    assert any(m.refused and "generation" in m.refused for m in modes)  # SmolLM2's template has no {% generation %}
    flagged = "".join(texts[t] for t in sorted(flags)).replace("␣", " ")
    assert flagged == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert max(losses[t] for t in flags) > 5  # the model is surprised by its own default prompt in the middle

    request = page.page_request(page_form(sample="quiz_prompt_completion"))
    seq, texts, losses, flags, modes, _ = model_view.example_data(request, 0, "smollm2", loading)
    assert not flags  # plain text: no template, nothing put in
    for m in modes:
        if m.refused or m.same_as:
            continue
        labels = model_view.view.open_view(model_view.replace(
            model_view.model_request(request, "smollm2"), options=model_view.replace(
                request.options, mode={"whole text": "whole", "answer only": "completion"}[m.name]))
        ).prep.sequences[0].labels
        with torch.no_grad():
            expected = model(input_ids=torch.tensor([seq.input_ids]), labels=torch.tensor([labels])).loss.item()
        assert abs(m.mean - expected) < 1e-4, m
    assert {m.name for m in modes if m.mean is not None} == {"whole text", "answer only"}


def test_the_page_refuses_model_names_it_may_not_load(monkeypatch):
    from sftviz import model_view
    assert model_view.check("none") is None and model_view.check("") is None
    for name in ("/etc", "../secrets", "x" * 300, "owner/not-here-offline"):
        with pytest.raises(ValueError) as e:
            model_view.check(name)
        assert "\n" not in str(e.value) and str(e.value)
    html, loading = model_view.model_tab(None, 0, "/etc")
    assert "sv-error" in html and not loading
    for sent in (["smollm2"], {"a": 1}, 3):  # what an API call may send instead of a name
        html, loading = model_view.model_tab(None, 0, sent)
        assert "sv-error" in html and "by text" in html and not loading


def test_a_visitors_own_hub_id_never_evicts_the_offered_model(monkeypatch, one_thread_restored):
    from sftviz import model_loss
    offered = loaded_smollm2()
    started = []

    class Fake:  # a Hub model being loaded: never touches the network
        def __init__(self, name):
            self.name, self.started, self.error = name, 0.0, None
            self.done = model_loss.threading.Event()
            started.append(name)

    monkeypatch.setattr(model_loss, "Loading", Fake)
    monkeypatch.setattr(model_loss.time, "monotonic", lambda: 10.0)
    first = model_loss.loading("someone/model-a")
    assert model_loss.loading("someone/model-b") is None  # one visitor's load at a time: the next one waits
    first.done.set()
    assert model_loss.loading("someone/model-b").name == "someone/model-b"
    assert "someone/model-a" not in model_loss._loaded  # evicted by the other visitor's model ...
    assert model_loss._loaded["smollm2"] is offered  # ... but the offered model stays
    assert started == ["someone/model-a", "someone/model-b"]
    for name in ("someone/model-a", "someone/model-b"):
        model_loss._loaded.pop(name, None)


def test_the_server_never_forks_a_child_while_it_reads_a_model_and_the_slow_part_runs_in_a_child(
        monkeypatch, one_thread_restored):
    """A child forked while another thread of the server converted SmolLM2 hung (or crashed with glibc's
    "corrupted size vs. prev_size"): 1 training child in 12 in scripts/fork_stress.py. The conversion or download
    now runs in a child of its own, and reading the files into memory holds bounded.FORK_LOCK: a fork asked for
    meanwhile waits for it."""
    import os
    import threading

    from sftviz import bounded, model_loss
    monkeypatch.setattr(model_loss, "_loaded", model_loss.OrderedDict())
    monkeypatch.setattr(model_loss, "fetch", lambda name: str(os.getpid()))  # "the folder": who fetched it
    seen = {}

    def fork_now():
        bounded.run(int, "1")
        seen["forked"] = time.monotonic()

    def load_model(name, folder):
        seen.update(fetched_in=int(folder), locked=bounded.FORK_LOCK.locked())
        forker = seen["forker"] = threading.Thread(target=fork_now)
        forker.start()  # another visitor's request forks now
        time.sleep(1)
        seen["read"] = time.monotonic()
        return "model", "tokenizer"

    monkeypatch.setattr(model_loss, "load_model", load_model)
    loading = model_loss.loading("someone/model")
    assert loading.done.wait(30) and loading.error is None and loading.model == "model"
    seen["forker"].join(30)
    assert seen["fetched_in"] != os.getpid()  # the slow part: in a child
    assert seen["locked"] and seen["forked"] >= seen["read"]  # the fork waited until the model was read


def test_a_long_example_is_refused_in_one_line(monkeypatch, one_thread_restored):
    from sftviz import model_view, page
    loading = loaded_smollm2()
    monkeypatch.setattr(model_view, "MODEL_TOKENS", 20)
    said = model_view.example_data(page.page_request(page_form(sample="quiz_chat")), 0, "smollm2", loading)
    assert isinstance(said, str) and "at most 20" in said


def test_browser_the_tab_says_it_is_loading_next_keeps_working_and_the_system_prompt_is_flagged(
        page, server, monkeypatch, one_thread_restored):
    from sftviz import model_loss
    smollm2()
    monkeypatch.setattr(model_loss, "_loaded", model_loss.OrderedDict())  # this server has not loaded the model yet
    real = model_loss.fetch

    def slow(name):  # a first load takes ~20 s on a fresh server (the GGUF's conversion): here 6 s at least
        time.sleep(6)
        return real(name)

    monkeypatch.setattr(model_loss, "fetch", slow)  # (in the load's own child process, as the conversion is)
    page.goto(server + "?sample=quiz_chat", wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
    page.get_by_role("tab", name="Real model").click()
    page.locator("#model-choice input").click()
    page.get_by_role("option", name="SmolLM2-135M-Instruct (offline)").click()
    page.locator("#model-view .sv-model-loading").wait_for(timeout=5000)
    assert "Loading the model SmolLM2-135M-Instruct" in page.locator("#model-view").inner_text()

    before = page.locator("#token-view").inner_html()
    page.locator("#next").click()  # while the model loads: the example moves on at once
    page.wait_for_function("() => document.querySelector('#example-index input').value === '1'", timeout=5000)
    page.wait_for_function("(b) => document.querySelector('#token-view').innerHTML !== b", arg=before, timeout=5000)
    assert page.locator("#model-view .sv-model-loading").count() == 1  # still loading

    page.locator("#model-view .sv-model-tokens").wait_for(timeout=90000)
    said = page.locator("#model-view").inner_text()
    assert "under TRL default → whole text" in said
    assert "Not in your data" not in said  # example 1 has its own system message: the template adds nothing
    page.locator("#next").click()  # example 2 has none: SmolLM2's template puts its default one in
    page.wait_for_function("() => document.querySelector('#model-view').innerText.includes("
                           "'You are a helpful AI assistant named SmolLM, trained by Hugging Face')", timeout=30000)
    assert page.locator("#example-index input[type=number]").input_value() == "2"
    assert page.locator("#model-view .sv-flagged").count() >= 10
    assert page.locator("#model-view .sv-heat-answer").count() > 10  # whole text: every token after the first

    from sftviz import model_view  # another tab shown: Next runs no forward pass; opening the tab redraws
    asked = []
    real_data = model_view.example_data
    monkeypatch.setattr(model_view, "example_data", lambda request, i, *a: asked.append(i) or real_data(request, i, *a))
    page.get_by_role("tab", name="Tokens").click()
    before = page.locator("#token-view").inner_html()
    page.locator("#next").click()
    page.wait_for_function("(b) => document.querySelector('#token-view').innerHTML !== b", arg=before, timeout=10000)
    page.wait_for_timeout(1500)  # (the redraw that follows Next would have run by now)
    assert asked == []
    page.get_by_role("tab", name="Real model").click()
    page.wait_for_function("() => !document.querySelector('#model-view').innerText.includes("
                           "'You are a helpful AI assistant named SmolLM')", timeout=30000)
    assert asked == [3]
    names = [n.strip() for n in page.locator("#main-tabs [role=tab]").all_inner_texts()]  # each tab once, by its name
    assert len(names) == len(set(names)) and {"Real model", "Train: whole vs answer"} <= set(names), names
    assert not page.external_requests


def test_the_page_refuses_a_real_fine_tune_on_a_cpu_in_one_line_with_an_estimate(monkeypatch):
    from sftviz import page, zerogpu
    smollm2()
    monkeypatch.setattr(zerogpu, "device", lambda: "cpu")
    request = page.page_request(page_form(sample="quiz_prompt_completion"))
    form = {"view-request": request, "preset": "quick", "train-modes": ["whole", "completion"], "train-steps": 240,
            "train-lr": 1e-3, "train-seed": 0, "train-model": "smollm2", "train-weighted": False, "train-weight": 0.1}
    outs = list(page.train_stream(form))
    said = outs[-1]["train-status"]
    assert len(outs) == 1 and "sv-error" in said, outs  # refused before anything starts
    assert "no GPU here: 240 steps of 2 runs of smollm2 would take about" in said and "tiny" in said
    assert "\n" not in said.split("</")[0]


def tiny_pretrained(tmp_path):
    """A small random Llama with SmolLM2's tokenizer, saved as a pretrained folder (its path is the model name)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from sftviz.model_loss import smollm2_folder
    tok = AutoTokenizer.from_pretrained(smollm2_folder())
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    folder = tmp_path / "tiny-pretrained"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_cli_train_of_a_pretrained_model_is_refused_on_a_cpu_unless_allow_slow(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT
    smollm2()
    folder = tiny_pretrained(tmp_path)
    data = os.path.join(ROOT, "assets", "samples", "quiz_prompt_completion.jsonl")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    base = [sys.executable, "-m", "sftviz", "train", data, "--model", folder, "--limit", "40"]
    run = subprocess.run(base, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 2 and run.stdout == "", run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and "no GPU here: 240 steps of 2 runs" in line and "--allow-slow" in line, line
    run = subprocess.run(base + ["--steps", "2", "--allow-slow", "--json"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    final = json.loads(run.stdout.strip().splitlines()[-1])
    assert final["config"]["learning_rate"] == 2e-5  # SFTConfig's default for a pretrained model
    assert all("before" in g and set(g["outputs"]) == {"whole", "completion"} for g in final["generations"])
    assert "as --allow-slow asks" in run.stderr


def test_the_dataset_pass_sums_the_models_loss_per_role_in_a_background_job(monkeypatch, one_thread_restored):
    import torch

    from sftviz import model_view, page
    loading = loaded_smollm2()
    monkeypatch.setattr(model_view, "DATASET_ROWS", 6)
    request = page.page_request(page_form(sample="quiz_chat"))
    outs = list(page.model_dataset({"view-request": request, "example-index": 0, "model-choice": "smollm2"}))
    said = outs[-1]["model-dataset"]
    assert "on the first 6 examples" in said and "sv-roles" in said, said
    watch, n, skipped = model_view.dataset_watch(request, "smollm2")  # the same job, kept: its sums, replayed
    assert (n, skipped) == (6, 0)
    with watch:
        list(watch.follow())
        sums = watch.result
    vw = model_view.view.open_view(model_view.model_request(request, "smollm2"))
    total, count = 0.0, 0
    for seq in vw.prep.sequences[:6]:
        with torch.no_grad():
            loss = loading.model(input_ids=torch.tensor([seq.input_ids]), labels=torch.tensor([seq.labels])).loss
        scored = sum(1 for lab in seq.labels[1:] if lab != -100)
        total, count = total + loss.item() * scored, count + scored
    assert sums["trained"][1] == count and abs(sums["trained"][0] - total) < 1e-2
    no_system = sum(1 for row in vw.loaded.rows[:6] if row["messages"][0]["role"] != "system")
    assert sums["added"][1] == 16 * no_system  # SmolLM2's default system prompt: 16 tokens in every such row
    assert f"{sums['added'][1]:,}" in said


def test_the_page_dataset_pass_without_a_model_says_so():
    from sftviz import page
    request = page.page_request(page_form(sample="quiz_chat"))
    outs = list(page.model_dataset({"view-request": request, "example-index": 0, "model-choice": "none"}))
    assert "pick a model first" in outs[-1]["model-dataset"]


def test_cli_doctor_adds_the_models_mean_loss_per_role(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT
    smollm2()
    run = subprocess.run([sys.executable, "-m", "sftviz", "doctor", "quiz_chat", "--model", "smollm2", "--model-rows",
                          "6", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    roles = json.loads(run.stdout)["model_roles"]
    from sftviz import data
    rows = data.load(os.path.join(ROOT, "assets", "samples", "quiz_chat.jsonl"), limit=6)
    assert roles["added"]["tokens"] == 16 * sum(r["messages"][0]["role"] != "system" for r in rows)
    assert roles["added"]["mean_loss"] > 5 and roles["known"]["mean_loss"] < 0.1
    assert 0 < roles["known"]["tokens"] < roles["trained"]["tokens"] and roles["context"]["tokens"] == 0
