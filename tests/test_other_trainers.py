"""markers.py against the other trainers' real code: TRL 0.19.1's DataCollatorForCompletionOnlyLM and unsloth_zoo
2026.10.9's train_on_responses_only, each run in its own venv (scripts/test.sh makes them) by
other_trainers_reference.py. Labels must be identical, and dropped rows, warnings and refusals must match."""

import functools
import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, get_tokenizer, shared_path
from sftviz import data
from sftviz.labels import Options, TRLRefusal, prepare
from sftviz.tokenizer import default_path

VENVS = {"trl-0.19": ".venv-trl019", "unsloth": ".venv-unsloth"}
SMOLLM3 = shared_path("assets", "chat_templates", "smollm3_chat_template.jinja")
TOKENIZERS = {"bundled": None, "gpt2": shared_path("assets", "tokenizers", "gpt2"),
              "phi-3-mini": shared_path("assets", "tokenizers", "phi-3-mini")}


def rows_of(name, n=12):
    """Datasets by name: bundled samples, the shared ones, and the formats old-collator recipes use."""
    if name in ("quiz_text", "quiz_prompt_completion", "quiz_chat", "lesson_chat", "lesson_bugs",
                "quiz_prompt_answer_text"):
        ext = "csv" if name.endswith("_text") and name.startswith("quiz_prompt") else "jsonl"
        return data.load(os.path.join(ROOT, "assets", "samples", f"{name}.{ext}"), limit=n)
    if name == "gsm8k_qa":  # "Question: ...\nAnswer: ..." text, the usual hand-made format
        return [{"text": f"Question: {r['question']}\nAnswer: {r['answer']}"}
                for r in data.load(shared_path("assets", "data", "gsm8k_test.jsonl"), limit=n)]
    if name == "alpaca":  # the Alpaca prompt every DataCollatorForCompletionOnlyLM example uses
        return [{"text": f"### Instruction:\n{r['instruction']}\n{r['input']}\n\n### Response:\n{r['output']}"}
                for r in data.load(shared_path("assets", "data", "gpteacher_roleplay_alpaca.jsonl"), limit=n)]
    if name == "oasst":  # chats, 42 of 95 with two assistant turns
        return data.load(shared_path("assets", "data", "oasst_en95_messages.jsonl"), limit=n)
    if name == "c4":
        return data.load(shared_path("assets", "data", "c4_demo_text.jsonl"), limit=n)
    if name == "gsm8k_pc":
        return [{"prompt": f"Question: {r['question']}\nAnswer:", "completion": " " + r["answer"]}
                for r in data.load(shared_path("assets", "data", "gsm8k_test.jsonl"), limit=n)]
    if name == "tool_chat":  # a tool turn between two assistant turns
        return [{"messages": [{"role": "user", "content": "Weather in Paris?"},
                              {"role": "assistant", "content": "Let me look."},
                              {"role": "tool", "content": "18 C, sunny"},
                              {"role": "assistant", "content": "It is 18 C and sunny."}]},
                {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]
    raise KeyError(name)


CHATML = ("<|im_start|>user\n", "<|im_start|>assistant\n")
PHI3 = ("<|user|>\n", "<|assistant|>\n")
# (id, data, tokenizer, chat template, (instruction, response), max_length, text field): each runs under both rules
# (Unsloth needs an instruction marker: where a case has none, it runs under TRL 0.19 only).
CASES = [
    ("text-qa-gpt2", "gsm8k_qa", "gpt2", None, ("Question:", "\nAnswer:"), 1024, "text"),
    ("text-qa-gpt2-response-only", "gsm8k_qa", "gpt2", None, (None, "Answer:"), 1024, "text"),
    ("text-qa-phi3", "gsm8k_qa", "phi-3-mini", None, ("Question:", "\nAnswer:"), 1024, "text"),
    ("text-qa-phi3-space", "gsm8k_qa", "phi-3-mini", None, (None, " Answer:"), 1024, "text"),
    ("text-qa-phi3-truncated", "gsm8k_qa", "phi-3-mini", None, ("Question:", "Answer:"), 48, "text"),
    ("alpaca-gpt2", "alpaca", "gpt2", None, ("### Instruction:\n", "### Response:\n"), 1024, "text"),
    ("alpaca-phi3", "alpaca", "phi-3-mini", None, ("### Instruction:\n", "### Response:\n"), 1024, "text"),
    ("alpaca-phi3-in-context", "alpaca", "phi-3-mini", None, (None, "\n### Response:\n"), 1024, "text"),
    ("alpaca-bundled", "alpaca", "bundled", None, ("### Instruction:\n", "### Response:\n"), 1024, "text"),
    ("bundled-quiz-text", "quiz_text", "bundled", None, ("Question:", "Answer:"), 1024, "text"),
    ("bundled-quiz-text-truncated", "quiz_text", "bundled", None, ("Question:", "Answer:"), 40, "text"),
    ("bundled-quiz-pc", "quiz_prompt_completion", "bundled", None, ("Question:", "Answer:"), 1024, "text"),
    ("bundled-prompt-answer-text", "quiz_prompt_answer_text", "bundled", None, ("Question:", "Answer:"), 1024,
     "text"),
    ("gsm8k-pc-gpt2", "gsm8k_pc", "gpt2", None, ("Question:", "Answer:"), 1024, "text"),
    ("bundled-chat", "quiz_chat", "bundled", None, CHATML, 1024, "text"),
    ("bundled-chat-response-only", "lesson_chat", "bundled", None, (None, CHATML[1]), 1024, "text"),
    ("bundled-chat-truncated", "quiz_chat", "bundled", None, CHATML, 24, "text"),
    ("bundled-tool-turn", "tool_chat", "bundled", None, CHATML, 1024, "text"),
    ("oasst-phi3", "oasst", "phi-3-mini", None, PHI3, 1024, "text"),
    ("oasst-phi3-ids", "oasst", "phi-3-mini", None, (None, "[32001]"), 1024, "text"),
    ("oasst-phi3-truncated", "oasst", "phi-3-mini", None, PHI3, 64, "text"),
    ("oasst-phi3-smollm3", "oasst", "phi-3-mini", "smollm3", CHATML, 2048, "text"),
    ("oasst-phi3-smollm3-no-newline", "oasst", "phi-3-mini", "smollm3",
     ("<|im_start|>user", "<|im_start|>assistant"), 2048, "text"),
    ("tool-turn-phi3-smollm3", "tool_chat", "phi-3-mini", "smollm3", CHATML, 2048, "text"),
    ("c4-no-marker", "c4", "gpt2", None, ("### Instruction:", "### Response:"), 256, "text"),
    ("missing-in-some-rows", "lesson_bugs", "bundled", None, ("Question:", "Answer:"), 32, "text"),
]


def case_rules(case):
    return ["trl-0.19"] + (["unsloth"] if case[4][0] is not None else [])


def tokenizer(name, template):
    tok = get_tokenizer({"bundled": "default", "phi-3-mini": "phi3"}.get(name, name))
    if template:
        import copy
        tok = copy.deepcopy(tok)
        with open(SMOLLM3, encoding="utf-8") as f:
            tok.chat_template = f.read()
    return tok


def oracle_marker(marker):
    """A marker as the library takes it: token ids as a list, else the string."""
    if marker and marker.startswith("["):
        return json.loads(marker)
    return marker


@functools.lru_cache(maxsize=None)
def oracle(rules):
    """Every case of `rules`, through the real library (one process for all of them)."""
    python = os.path.join(ROOT, VENVS[rules], "bin", "python")
    if not os.path.exists(python):
        if os.environ.get("SFTVIZ_ORACLE_VENVS"):
            pytest.fail(f"{VENVS[rules]} is missing: scripts/test.sh makes it")
        pytest.skip(f"{VENVS[rules]} is missing: run scripts/test.sh (it makes the oracle venvs)")
    cases = [case for case in CASES if rules in case_rules(case)]
    payload = []
    for _, name, tok_name, template, (instruction, response), max_length, field in cases:
        tok_path = TOKENIZERS[tok_name] or default_path()
        chat_template = open(SMOLLM3, encoding="utf-8").read() if template else None
        payload.append({"rows": rows_of(name), "tokenizer": tok_path, "chat_template": chat_template,
                        "max_length": max_length, "text_field": field, "response": oracle_marker(response),
                        "instruction": oracle_marker(instruction)})
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "cases.json"), os.path.join(tmp, "results.json")
        with open(src, "w", encoding="utf-8") as f:
            json.dump(payload, f)
        done = subprocess.run([python, os.path.join(ROOT, "tests", "other_trainers_reference.py"), rules, src, out],
                              capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
        assert done.returncode == 0, done.stderr[-3000:]
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
    return {case[0]: result for case, result in zip(cases, results)}


# What each library says, and the words sftviz must say in the same case (warnings and refusals).
SAID = ["Could not find response key", "Could not find instruction key", "pad_token_id and eos_token_id",
        "Mismatch between tokenized prompt", "double BOS", "Removed", "masked every label", "most likely cause is "
        "truncation", "could not be resolved", "formatting_func"]
SAID_ERRORS = {"KeyError: 'completion'": "no 'completion' column"}


def said(messages):
    return {phrase for phrase in SAID if any(phrase in m for m in messages)}


def run_case(case, rules):
    case_id, name, tok_name, template, (instruction, response), max_length, field = case
    expected = oracle(rules)[case_id]
    tok = tokenizer(tok_name, template)
    options = Options(max_length=max_length, text_field=field, rules=rules, response=response,
                      instruction=instruction)
    if expected["error"]:
        with pytest.raises((TRLRefusal, ValueError)) as ours:
            prepare(rows_of(name), tok, options)
        theirs = expected["error"]
        words = [ours_words for their_words, ours_words in SAID_ERRORS.items() if their_words in theirs]
        assert said([theirs]) == said([str(ours.value)]) if not words else words[0] in str(ours.value), \
            (theirs, str(ours.value))
        return expected
    got = prepare(rows_of(name), tok, options)
    kept = [s for s in got.sequences if not s.dropped]
    assert [k for k, s in enumerate(got.sequences) if s.dropped] == expected["dropped"]
    assert len(kept) == len(expected["records"])
    for k, (s, e) in enumerate(zip(kept, expected["records"])):
        assert s.input_ids == e["input_ids"], f"{case_id} row {k} input_ids"
        assert s.labels == e["labels"], f"{case_id} row {k} labels"
    assert said(got.warnings) == said(expected["warnings"]), (got.warnings, expected["warnings"])
    return expected


@pytest.mark.parametrize("case", [c for c in CASES if "trl-0.19" in case_rules(c)], ids=lambda c: c[0])
def test_trl_019_collator_labels_are_the_real_ones(case):
    run_case(case, "trl-0.19")


@pytest.mark.parametrize("case", [c for c in CASES if "unsloth" in case_rules(c)], ids=lambda c: c[0])
def test_unsloth_labels_are_the_real_ones(case):
    run_case(case, "unsloth")
