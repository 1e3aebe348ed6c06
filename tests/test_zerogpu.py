"""ZeroGPU (a free Hugging Face Space), tested on its contract: the app runs as on a ZeroGPU Space
(SPACES_ZERO_GPU=true) with tests/zerogpu_standin/spaces first on its path, a stand-in that records every GPU
call as the real `spaces` would make it (which process, which thread, which Gradio event and visitor, which
duration), and refuses calls as the real one does.

* The tiny model's paired training makes no GPU call: it trains in the CPU workers, as on every host.
* A GPU call (a pretrained model's training) is made in the server's process, from the visitor's own event
  (their request: what charges their quota), never from a worker; its duration is computed from the work,
  and the quick preset asks for 60 s or less.
* Each ZeroGPU refusal is one line on the page, with what to do next; the next request works.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

STANDIN = os.path.join(ROOT, "tests", "zerogpu_standin")
VIEW = dict(sample="quiz_prompt_completion", hub_id="", columns="As TRL reads your file", text_field="text",
            tokenizer="default", prompt_template="", completion_template="", mode="completion",
            max_length=1024, packing=False, packing_strategy="bfd", example_index=0)


def train_args(model, steps=4):
    return dict(preset="Quick demo (~10-30 s)", train_modes=["Whole text", "Answer only (completion_only_loss)"],
                train_steps=steps, train_lr=0.001, train_seed=0, train_model=model, train_weighted=False,
                train_weight=0.1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """`python app.py` as on a ZeroGPU Space (the stand-in `spaces`), with a small pretrained model on disk."""
    tmp = tmp_path_factory.mktemp("zerogpu")
    model_dir = str(tmp / "small-pretrained")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sftviz.tokenizer import load_tokenizer
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(load_tokenizer("default")), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
                     ).save_pretrained(model_dir)
    load_tokenizer("default").save_pretrained(model_dir)  # a pretrained model trains with its own tokenizer
    port, log, refuse = free_port(), tmp / "spaces.jsonl", tmp / "refuse"
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "PYTHONPATH": os.pathsep.join([STANDIN, ROOT]),
           "SFTVIZ_SPACES_LOG": str(log), "SFTVIZ_SPACES_REFUSE": str(refuse), "SFTVIZ_LOCAL_PATHS": "1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    out = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    end = time.time() + 180
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
            time.sleep(0.5)
    try:
        yield dict(url=url, pid=proc.pid, log=log, refuse=refuse, model=model_dir)
    finally:
        proc.terminate()
        proc.wait(30)
        out.close()


def test_off_zerogpu_nothing_changes(monkeypatch):
    """No SPACES_ZERO_GPU, or no `spaces` package: the function is returned as it is, and work runs where it
    always does (CUDA when the machine has it)."""
    from sftviz import zerogpu

    def work():
        return "done"

    monkeypatch.syspath_prepend(STANDIN)  # `spaces` importable, but not on ZeroGPU
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not zerogpu.active() and zerogpu.gpu(30)(work) is work
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # on ZeroGPU, but without the package
    monkeypatch.setattr(zerogpu.importlib.util, "find_spec", lambda name: None)
    assert not zerogpu.active() and zerogpu.gpu(30)(work) is work
    assert zerogpu.device() == "cpu"  # a worker never touches ZeroGPU's GPU
    assert zerogpu.refusal(ValueError("x")) is None


def records(space):
    if not space["log"].exists():
        return []
    return [json.loads(line) for line in space["log"].read_text().splitlines()]


def calls(space):
    return [r for r in records(space) if "call" in r]


def client_with_view(space):
    from gradio_client import Client
    client = Client(space["url"], verbose=False)
    client.predict(**VIEW, api_name="/refresh")
    return client


def final_status(client, model, steps=4):
    job = client.submit(**train_args(model, steps), api_name="/train_stream")
    job.result(timeout=180)
    return str(job.outputs()[-1][2])  # held-out plot, training plot, status, ...


def test_the_tiny_model_trains_with_no_gpu_call(space):
    client = client_with_view(space)
    before = len(calls(space))
    status = final_status(client, "tiny")
    assert "Done in" in status, status
    assert len(calls(space)) == before  # no visitor's GPU quota spent on the tiny model
    # the one GPU function is decorated once, at import, in the server's process
    decorated = [r for r in records(space) if "decorated" in r]
    assert [r["decorated"] for r in decorated] == ["train_updates_on_gpu"] and decorated[0]["pid"] == space["pid"]


def test_a_gpu_call_is_made_from_the_visitors_event_in_the_server_process(space):
    from sftviz import live, train
    client = client_with_view(space)
    status = final_status(client, space["model"])
    assert "Done in" in status, status
    call = calls(space)[-1]
    assert call["call"] == "train_updates_on_gpu"
    assert call["pid"] == space["pid"]  # the web server's own process, not a worker
    assert call["event_id"] and not call["main_thread"]  # inside the visitor's Gradio event
    assert call["session"] == client.session_hash  # that visitor's request: their quota pays
    config = train.TrainConfig.preset("quick", modes=("whole", "completion"), steps=4)
    assert call["duration"] == live.gpu_seconds(None, config)
    quick = train.TrainConfig.preset("quick", modes=("whole", "completion"))
    assert live.gpu_seconds(None, quick) <= 60  # the quick preset fits a visitor's first minute


@pytest.mark.parametrize("title,advice", [("ZeroGPU quota exceeded", "tiny model"),
                                          ("ZeroGPU illegal duration", "fewer steps"),
                                          ("ZeroGPU queue timeout", "Try again in a minute")])
def test_each_zerogpu_refusal_is_one_line_and_the_next_request_works(space, title, advice):
    client = client_with_view(space)
    space["refuse"].write_text(title)
    try:
        status = final_status(client, space["model"])
    finally:
        space["refuse"].unlink()
    import html
    import re
    text = html.unescape(re.sub(r"<[^>]+>", "", status)).strip()
    assert text.startswith(f"⚠ {title}:") and advice in text and "\n" not in text, text
    assert "Traceback" not in status
    # the next request works: browsing, and a GPU training again
    assert client.predict(example_index=0, api_name="/next")
    assert "Done in" in final_status(client, space["model"])
