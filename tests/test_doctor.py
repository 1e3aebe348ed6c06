"""The SFT doctor: for each check, data that triggers it and data that must not."""

import json
import os
import re

import pytest

from conftest import get_tokenizer, shared_path
from sftviz import cli, data, doctor
from sftviz.labels import Options, prepare

QA = [{"prompt": f"Question: what is {a} + {b}?\nAnswer:", "completion": f" {a + b}."} for a in range(4) for b in range(3)]


def checks(rows, options=Options("completion"), tok="default"):
    tok = get_tokenizer(tok) if isinstance(tok, str) else tok
    return {f.check: f for f in doctor.diagnose(rows, tok, options)}


def test_bundled_samples_at_their_defaults_have_no_error_or_warning():
    for name in data.samples():
        columns = "map" if name == "quiz_prompt_answer_text" else "trl"  # TRL stops on it as it is
        found = checks(data.load_trl(name, columns=columns).rows,
                       Options("assistant" if name == "quiz_chat" else "auto"))
        assert not [f for f in found.values() if f.severity != "info"], (name, list(found))
    # the one info is true: the quiz sample has long prompts and one-word answers by design (5% trained)
    assert set(checks(data.load_trl("quiz_prompt_completion").rows)) == {"small_trained_fraction"}


def test_no_target_left_and_batches_of_nothing():
    long_prompt = [{"prompt": "word " * 60, "completion": " yes"}] * 3 + QA
    found = checks(long_prompt, Options("completion", 20))
    assert found["no_target"].severity == "warning" and found["no_target"].count == 3
    assert checks(long_prompt[:3], Options("completion", 20))["no_target"].severity == "error"  # all dropped
    assert "no_target" not in checks(QA)
    # max_length 1 in whole mode: every example keeps one labelled token, which is never scored (nothing before
    # it), so TRL keeps them all and every batch is entirely -100
    kept = checks(QA, Options("whole", 1))["no_target_kept"]
    assert kept.severity == "error" and kept.count == len(QA) and "NaN" in kept.explanation
    assert "no_target_kept" not in checks(QA, Options("whole"))


def test_answers_cut_by_max_length_with_a_suggestion():
    rows = data.load_trl("quiz_prompt_completion").rows
    cut = checks(rows, Options("completion", 40))["answers_cut"]
    assert cut.severity == "warning" and 0 < cut.count < len(rows)
    assert cut.examples[0]["positions"] == [39] and "answer token(s) lost" in cut.examples[0]["note"]
    suggested = int(re.match(r"max_length (\d+) keeps 99% of examples whole", cut.fix).group(1))
    lengths = sorted(len(s.input_ids) for s in prepare(rows, get_tokenizer("default"), Options("completion", None))
                     .sequences)
    assert suggested % 64 == 0 and suggested >= lengths[int(0.99 * len(lengths))]
    assert "answers_cut" not in checks(rows, Options("completion", suggested))


def test_the_end_of_the_answer_is_never_trained():
    rows = data.load_trl("quiz_prompt_completion").rows
    assert "no_stop_token" in checks(rows, Options("completion", 40))  # the EOS is cut away
    assert "no_stop_token" not in checks(rows)
    # a chat template that gives <|im_end|> to the next message: TRL only warns; the doctor says what it means
    import copy
    tok = copy.deepcopy(get_tokenizer("default"))
    tok.chat_template = tok.chat_template.replace(
        "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}",
        "{%- generation -%}{{- message['content'] -}}{%- endgeneration -%}{{- '<|im_end|>' -}}")
    chats = data.load_trl("quiz_chat").rows[:20]
    found = checks(chats, Options("assistant"), tok)
    assert {"no_stop_token", "stop_token_template"} <= set(found)
    assert found["no_stop_token"].severity == "error"


def test_eos_split_into_plain_tokens():
    gsm = data.load_trl(shared_path("assets", "data", "gsm8k_test.jsonl"), limit=20).rows
    found = checks(gsm, Options("completion", 512), "gpt2")["eos_split"]
    assert found.severity == "error" and len(found.examples[0]["positions"]) == 7
    assert "eos_split" not in checks(QA)


def test_trl_swaps_in_a_training_template():
    oasst = data.load_trl(shared_path("assets", "data", "oasst_en95_messages.jsonl"), limit=10).rows
    assert checks(oasst, Options("assistant", 2048), "phi3")["training_template"].severity == "info"
    assert "training_template" not in checks(data.load_trl("quiz_chat").rows, Options("assistant"))


def test_double_bos_and_double_eos():
    found = checks([{"text": "<|bos|>Hello there."}, {"text": "Bye.<|im_end|><|im_end|>"}], Options("whole"))
    assert found["double_bos"].examples == [{"index": 0, "positions": [0, 1]}]
    assert found["double_eos"].examples[0]["index"] == 1
    assert not {"double_bos", "double_eos"} & set(checks([{"text": "Hello there."}], Options("whole")))


def test_prompt_completion_seam():
    rows = [{"prompt": "Question: capital of Italy?\nAnswer: ", "completion": "Rome."}] * 2
    seam = checks(rows)["prompt_seam"]
    assert seam.count == 2 and "trailing space" in seam.fix and seam.examples[0]["positions"]
    assert "prompt_seam" not in checks([{"prompt": "Question: capital of Italy?\nAnswer:", "completion": " Rome."}])


def test_wrapped_packing():
    assert checks(QA, Options("completion", 64, True, "wrapped"))["wrapped_packing"].severity == "warning"
    assert "wrapped_packing" not in checks(QA, Options("completion", 64, True, "bfd"))


def test_completion_only_on_chats_and_prompts_inside_text():
    chats = data.load_trl("quiz_chat").rows
    assert checks(chats, Options("completion"))["completion_only_noop"].severity == "warning"
    assert "completion_only_noop" not in checks(chats, Options("assistant"))
    text = [{"text": "Question: 2+2? Answer: 4"}] * 3
    assert checks(text, Options("auto"))["text_trains_prompt"].severity == "info"
    assert "text_trains_prompt" not in checks(QA)


def test_small_trained_fraction_and_shared_prefix():
    system = {"role": "system", "content": "You are a helpful, careful and honest assistant who answers briefly."}
    chats = [{"messages": [system, {"role": "user", "content": f"{a}+1?"}, {"role": "assistant", "content": str(a + 1)}]}
             for a in range(5)]
    found = checks(chats, Options("assistant"))
    assert found["shared_prefix"].severity == "info" and found["shared_prefix"].examples[0]["positions"][-1] >= 16
    assert "shared_prefix" not in checks(QA)
    assert "small_trained_fraction" not in checks(QA, Options("whole"))


def test_rows_of_different_shapes():
    mixed = QA[:3] + [{"text": "Just text."}]
    found = checks(mixed)["mixed_shapes"]
    assert found.count == 1 and found.examples == [{"index": 3, "positions": []}]
    assert "mixed_shapes" not in checks(QA)


def test_cli_doctor_exit_codes_and_json(capsys):
    assert cli.main(["doctor", "quiz_chat", "--mode", "assistant"]) == 0
    assert "no findings" in capsys.readouterr().out
    assert cli.main(["doctor", "quiz_prompt_completion", "--mode", "whole", "--max-length", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] >= 1 and report["findings"][0]["severity"] == "error"
    assert report["findings"][0]["check"] == "no_target_kept" and report["findings"][0]["percent"] == 100.0
    assert cli.main(["doctor", "no-such-file.jsonl"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_file_streamed_in_chunks_gives_the_same_findings_as_all_rows_at_once():
    path = data.samples()["quiz_prompt_completion"]
    rows = data.load_trl("quiz_prompt_completion").rows
    options = Options("completion", 40)
    whole = [f.to_dict() for f in doctor.diagnose(rows, get_tokenizer("default"), options)]
    for workers in (1, 2):
        done = []
        streamed, n = doctor.diagnose_file(path, get_tokenizer("default"), options, chunk_rows=37, workers=workers,
                                           progress=done.append)
        assert n == len(rows) and [f.to_dict() for f in streamed] == whole
        assert done[-1] == len(rows) and done == sorted(done) and len(done) == 11  # one call per chunk
    # a bad row deep in a big file is named by its row in the file, not in its chunk
    bad = data.samples()["quiz_prompt_completion"]
    import shutil
    import tempfile
    copy = os.path.join(tempfile.mkdtemp(), "bad.jsonl")
    shutil.copy(bad, copy)
    with open(copy, "a") as f:
        f.write('{"prompt": "x", "completion": 5}\n')
    with pytest.raises(data.DataError, match=f"row {len(rows)}: 'completion' must be text"):
        doctor.diagnose_file(copy, get_tokenizer("default"), options, chunk_rows=37, workers=1)


def test_prompt_and_completion_glued_or_repeated_are_found_and_pointed_at():
    tok = get_tokenizer("default")
    glued = [{"prompt": "What is the capital of France?", "completion": "Paris."}] + QA
    found = checks(glued)["prompt_completion_glued"]
    start = len(tok(glued[0]["prompt"])["input_ids"])
    assert found.count == 1 and found.examples == [{"index": 0, "positions": [start]}]
    repeat = [{"prompt": "Q: the capital of France?\nA: Paris.", "completion": " Paris."},
              {"prompt": "Q: 2+2?", "completion": "Q: 2+2? 4"}] + QA
    found = checks(repeat)["prompt_completion_repeat"]
    assert found.count == 2 and [e["index"] for e in found.examples] == [0, 1]
    assert "prompt_completion_glued" not in checks(QA) and "prompt_completion_repeat" not in checks(QA)
    # a marker at the end of the prompt is a separator; chats have no prompt/completion strings to join
    assert "prompt_completion_glued" not in checks([{"prompt": "Hi<|assistant|>", "completion": "Hello."}] + QA)


def test_a_prompt_answer_file_gets_the_separator_its_text_column_shows():
    rows = [{"prompt": "France?", "answer": "Paris.", "text": "France?\nAnswer: Paris."},
            {"prompt": "Peru?", "answer": "Lima.", "text": "Peru?\nAnswer: Lima."}]
    decision = data.decide(rows[0], columns="map")
    assert decision.mapping.prompt == "{{ prompt }}\nAnswer:" and decision.mapping.completion.startswith(" {{")
    mapped = data.to_trl(rows, decision)
    assert [r["prompt"] + r["completion"] for r in mapped] == [r["text"] for r in rows]
    assert not {"prompt_completion_glued", "prompt_completion_repeat"} & set(checks(mapped))
    # no text column: a newline between them, so "France?" + "Paris." is never glued
    bare = data.to_trl([{"prompt": "France?", "answer": "Paris."}], data.decide({"prompt": "France?",
                                                                               "answer": "Paris."}, columns="map"))
    assert bare[0]["prompt"] + bare[0]["completion"] == "France?\nParis."
