import json
import subprocess
import sys

import pytest

from conftest import ROOT, shared_path


def run(*args):
    return subprocess.run([sys.executable, "-m", "sftviz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_inspect_json_matches_engine_and_trl_fields():
    r = run("inspect", "quiz_prompt_completion", "--limit", "3", "--json")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) == 3
    for rec in recs:
        assert len(rec["input_ids"]) == len(rec["labels"]) == len(rec["roles"]) == len(rec["tokens"])
        assert set(rec["roles"]) == {"context", "target"}
        assert rec["tokens"][-1] == "<|im_end|>" and rec["labels"][-1] == rec["input_ids"][-1]  # EOS trained
        assert rec["next_token_targets"] == rec["labels"][1:] + [-100]
        assert "dropped" not in rec


def test_inspect_json_packing_has_position_ids_and_boundary_labels():
    r = run("inspect", "quiz_chat", "--limit", "20", "--json", "--packing", "--max-length", "256")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert "attention_mask" not in rec
    starts = [t for t, p in enumerate(rec["position_ids"]) if p == 0]
    assert len(starts) > 1 and all(rec["labels"][t] == -100 for t in starts)
    assert len(set(rec["segments"])) == len(starts)


def test_inspect_flags_dropped_examples():
    r = run("inspect", "quiz_prompt_completion", "--limit", "4", "--json", "--max-length", "20")
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(rec.get("dropped") for rec in recs)
    r = run("inspect", "quiz_prompt_completion", "--limit", "4", "--max-length", "20", "--no-color")
    assert "DROPPED by TRL" in r.stdout


def test_inspect_human_output_without_color_marks_roles():
    r = run("inspect", "quiz_prompt_completion", "--limit", "1", "--no-color")
    assert r.returncode == 0
    assert "legend:" in r.stdout and "target" in r.stdout
    assert "[<|im_end|>]" in r.stdout  # targets are bracketed when there is no color
    assert "\033[" not in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["inspect", "missing.jsonl"], "not a bundled sample"),
    (["inspect", "quiz_chat", "--tokenizer", "./no/such/dir"], "no tokenizer directory"),
    (["inspect", "quiz_prompt_completion", "--mode", "assistant"], "not conversational"),
    (["inspect", "quiz_prompt_completion", "--max-length", "zero"], "positive number"),
    (["inspect", "quiz_prompt_completion", "--max-length", "0"], "max_length must be a whole number of tokens from 1"),
    (["inspect", "some-user/some-dataset"], "not reachable"),
    (["inspect", "quiz_chat", "--packing", "--max-length", "none"], "max_length"),
])
def test_bad_input_is_one_line(args, needle):
    r = run(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{not json\n')
    r = run("inspect", str(bad))
    assert r.returncode == 2 and "bad.jsonl: line 2 is not valid JSON" in r.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("prompt,completion\n")
    r = run("inspect", str(empty))
    assert r.returncode == 2 and "empty.csv: the file has no rows" in r.stderr
    cols = tmp_path / "cols.csv"
    cols.write_text("foo,bar\n1,2\n")
    r = run("inspect", str(cols))
    assert r.returncode == 2 and "unrecognised columns" in r.stderr


def test_real_tokenizer_and_dataset_mapped_with_template():
    gsm = shared_path("assets", "data", "gsm8k_test.jsonl")
    tok = shared_path("assets", "tokenizers", "gpt2")
    r = run("inspect", gsm, "--tokenizer", tok, "--limit", "2", "--json",
            "--prompt-template", "Q: {{ question }}\nA:")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["tokens"][:2] == ["Q", ":"]
    # TRL appends "<|endoftext|>" as text; this GPT-2 config marks it single_word, so right after "18" it is
    # split into plain tokens: the model never sees the EOS id. sftviz shows it and warns, as TRL feeds it.
    assert "".join(rec["tokens"][-7:]) == "<|endoftext|>" and rec["roles"][-1] == "target"
    assert "EOS" in r.stderr


def test_inspect_prints_the_literal_labels_and_train_its_verdict():
    r = run("inspect", "quiz_prompt_completion", "--limit", "1", "--no-color")
    assert "labels = a copy of input_ids" in r.stdout and "\nlabels = [-100]*" in r.stdout
    r = run("train", "quiz_prompt_completion", "--steps", "10")
    assert r.returncode == 0, r.stderr
    assert "Held-out answer loss (lower is better): " in r.stdout and "cannot know facts" in r.stdout
