"""markers.py against the other trainers' real code: TRL 0.19.1's DataCollatorForCompletionOnlyLM and unsloth_zoo
2026.10.9's train_on_responses_only, each run in its own venv (scripts/test.sh makes them) by
other_trainers_reference.py. Labels must be identical, and dropped rows, warnings and refusals must match."""

import functools
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, get_tokenizer, run_in_venv, shared_path
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
    if name == "pc_marker_in_prompt":  # the response marker inside the prompt, text before the completion
        return [{"prompt": "Question: 2+2?\nAnswer: Let me think.", "completion": " 4"},
                {"prompt": "Question: 3+3?\nAnswer:", "completion": " 6"}]
    if name == "chat_pc_history":  # a conversational prompt with an earlier answer in it
        return [{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"},
                            {"role": "user", "content": "2+2?"}],
                 "completion": [{"role": "assistant", "content": "4"}]}]
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
    # unsloth PR #7062's kind of miss: ChatML written as text, a SentencePiece tokenizer that adds '▁' before a
    # string tokenized alone; the ids the doctor proposes, as TRL 0.19's collator takes them (a list)
    ("oasst-phi3-smollm3-proposed-ids", "oasst", "phi-3-mini", "smollm3",
     (None, "[29966, 29989, 326, 29918, 2962, 29989, 29958, 465, 22137]"), 2048, "text"),
    # a leading space the text does not have (the "### Assistant:" kind of miss), then the marker proposed for it
    ("text-qa-gpt2-leading-space", "gsm8k_qa", "gpt2", None, ("Question:", " Answer:"), 1024, "text"),
    ("text-qa-gpt2-proposed", "gsm8k_qa", "gpt2", None, ("Question:", "Answer:"), 1024, "text"),
    # prompt-completion under Unsloth: its spans copy the completion mask's labels (a span inside the prompt is -100)
    ("pc-marker-in-prompt", "pc_marker_in_prompt", "bundled", None, ("Question:", "Answer:"), 1024, "text"),
    ("chat-pc-history", "chat_pc_history", "bundled", None, CHATML, 1024, "text"),
    ("text-qa-gpt2-instruction-missing", "gsm8k_qa", "gpt2", None, ("### Human:", "Answer:"), 1024, "text"),
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
    cases = [case for case in CASES if rules in case_rules(case)]
    payload = []
    for _, name, tok_name, template, (instruction, response), max_length, field in cases:
        tok_path = TOKENIZERS[tok_name] or default_path()
        chat_template = open(SMOLLM3, encoding="utf-8").read() if template else None
        payload.append({"rows": rows_of(name), "tokenizer": tok_path, "chat_template": chat_template,
                        "max_length": max_length, "text_field": field, "response": oracle_marker(response),
                        "instruction": oracle_marker(instruction)})
    results = run_in_venv(VENVS[rules], "other_trainers_reference.py", rules, payload)
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


def findings(rows_name, tok_name, template, rules, instruction, response, max_length=1024):
    from sftviz.doctor import diagnose
    options = Options(max_length=max_length, rules=rules, response=response, instruction=instruction)
    return {f.check: f for f in diagnose(rows_of(rows_name), tokenizer(tok_name, template), options)}


@pytest.mark.parametrize("rules", ["trl-0.19", "unsloth"])
def test_doctor_explains_a_marker_tokenized_differently_in_context(rules):
    """unsloth PR #7062 (and #3198, #2364): a marker that tokenizes differently alone than in the text never
    matches. The doctor points at the marker's text in context, gives both tokenizations, and proposes a marker
    that matches (ids for the collator, which takes them); the oracle case above proves that it does."""
    f = findings("oasst", "phi-3-mini", "smollm3", rules, *CHATML)
    missing = f["marker_not_found"]
    assert missing.severity == "error" and missing.count == missing.total == 12
    assert "[529, 29989" in missing.explanation and "[29966, 29989" in missing.explanation  # '▁<' alone, '<' in context
    assert missing.examples[0]["positions"]  # the marker's text in context, by token position
    if rules == "trl-0.19":
        assert "[29966, 29989, 326, 29918, 2962, 29989, 29958, 465, 22137]" in missing.fix
        assert any(c[0] == "oasst-phi3-smollm3-proposed-ids" and
                   c[4][1] == "[29966, 29989, 326, 29918, 2962, 29989, 29958, 465, 22137]" for c in CASES)
    else:
        assert "No marker string can match" in missing.fix
        assert f["no_target"].severity == "error"


def test_doctor_proposes_the_marker_without_the_leading_space():
    f = findings("gsm8k_qa", "gpt2", None, "unsloth", "Question:", " Answer:")
    assert "Use 'Answer:'" in f["marker_not_found"].fix  # run by the oracle as text-qa-gpt2-proposed
    assert oracle("unsloth")["text-qa-gpt2-proposed"]["error"] is None


def test_doctor_pad_equal_to_eos_masks_the_eos_under_trl_019_only():
    """With phi-3, pad == eos == <|endoftext|>: TRL 0.19's collator masks it (the oracle's labels show it),
    Unsloth trains it (its span ends at an EOS, included)."""
    f = findings("oasst", "phi-3-mini", None, "trl-0.19", *PHI3)
    assert f["pad_masks_eos"].severity == "error" and f["pad_masks_eos"].count == 11  # one more is cut at 1024
    record = oracle("trl-0.19")["oasst-phi3"]["records"][0]
    assert record["input_ids"][-1] == 32000 and record["labels"][-1] == -100
    assert "pad_masks_eos" not in findings("oasst", "phi-3-mini", None, "unsloth", *PHI3)
    assert oracle("unsloth")["oasst-phi3"]["records"][0]["labels"][-1] == 32000


def test_doctor_last_match_wins_without_an_instruction_marker():
    f = findings("lesson_chat", "bundled", None, "trl-0.19", None, CHATML[1])
    assert f["last_match_only"].count == 1  # the one chat with two assistant turns
    assert f["last_match_only"].examples[0]["index"] == 0
    labels = oracle("trl-0.19")["bundled-chat-response-only"]["records"][0]["labels"]
    tok = tokenizer("bundled", None)
    assert tok.decode([t for t in labels if t != -100]) == "Lima.<|im_end|>\n"  # "Paris." (the first answer) is not


def test_doctor_tool_turn_between_markers_is_trained_by_trl_019_not_unsloth():
    f = findings("tool_chat", "bundled", None, "trl-0.19", *CHATML)
    assert f["other_turn_trained"].count == 1
    assert "other_turn_trained" not in findings("tool_chat", "bundled", None, "unsloth", *CHATML)
    tok = tokenizer("bundled", None)
    tool = tok("tool", add_special_tokens=False)["input_ids"][0]
    trl019, uns = (oracle(r)["bundled-tool-turn"]["records"][0] for r in ("trl-0.19", "unsloth"))
    at = trl019["input_ids"].index(tool)
    assert trl019["labels"][at] == tool and uns["labels"][at] == -100  # the real libraries disagree there


def test_doctor_says_the_header_is_never_trained():
    f = findings("quiz_chat", "bundled", None, "unsloth", *CHATML)
    assert f["header_not_trained"].severity == "info" and f["header_not_trained"].count == 12


def cli(*args):
    done = subprocess.run([sys.executable, "-m", "sftviz", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_cli_inspect_json_under_unsloth_matches_the_oracle_with_dropped_records():
    code, out, err = cli("inspect", "quiz_chat", "--rules", "unsloth", "--response-part", CHATML[1],
                         "--instruction-part", CHATML[0], "--max-length", "24", "--json", "--limit", "12")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    expected = oracle("unsloth")["bundled-chat-truncated"]
    assert [r["index"] for r in records if r.get("dropped")] == expected["dropped"]
    kept = [r for r in records if not r.get("dropped")]
    assert [(r["input_ids"], r["labels"]) for r in kept] == [(e["input_ids"], e["labels"]) for e in expected["records"]]
    assert "Unsloth: Removed 5 out of 12 samples" in err


def test_cli_marker_errors_are_one_line():
    code, _, err = cli("inspect", "quiz_chat", "--rules", "unsloth", "--response-part", "nope", "--instruction-part",
                       "x")
    assert code == 2 and err.count("\n") == 1 and "masked every label to -100" in err
    code, _, err = cli("inspect", "quiz_chat", "--response-part", "x")
    assert code == 2 and err.count("\n") == 1 and "add --rules unsloth" in err
    code, _, err = cli("inspect", "quiz_chat", "--rules", "unsloth", "--response-part", "x")
    assert code == 2 and err.count("\n") == 1 and "instruction_part must be" in err
    code, _, err = cli("doctor", "quiz_text", "--rules", "trl-0.19", "--response-template", " Answer:", "--json")
    assert code == 1 and "marker_not_found" in json.loads(_)["findings"][1]["check"] + _


def test_browser_trainer_choice_changes_the_tokens_and_compare_outlines_the_header(page, server, tmp_path,
                                                                                    monkeypatch):
    """The bundled tokenizer with SmolLM3's template, whose {% generation %} covers the assistant's header: TRL
    1.16's assistant_only_loss trains '<|im_start|>assistant\\n', Unsloth's search starts after it. The Trainer
    choice changes the token view, and Compare outlines exactly the header tokens that differ."""
    from test_app_browser import ROLES_JS, TEXT_JS, open_page

    from sftviz import page as page_handlers
    from sftviz.tokenizer import load_tokenizer
    monkeypatch.setattr(page_handlers, "LOCAL_PATHS", True)  # an operator's opt-in: a tokenizer folder by path
    tok = load_tokenizer("default")
    with open(SMOLLM3, encoding="utf-8") as f:
        tok.chat_template = f.read()
    folder = str(tmp_path / "chatml-smollm3")
    tok.save_pretrained(folder)

    open_page(page, server + "?sample=quiz_chat&mode=assistant")
    page.locator("#tokenizer textarea, #tokenizer input").first.fill(folder)
    page.locator("#tokenizer textarea, #tokenizer input").first.press("Enter")
    page.wait_for_function(f"() => ({TEXT_JS})().includes('Knowledge')", timeout=30000)  # SmolLM3's system turn
    trl_roles = page.evaluate(ROLES_JS)
    page.locator("#trainer input").click()
    page.get_by_role("option", name="Unsloth train_on_responses_only").click()
    page.wait_for_function(f"(b) => JSON.stringify(({ROLES_JS})()) !== b", arg=json.dumps(trl_roles), timeout=30000)
    page.wait_for_function("() => ((document.querySelector('#response-marker textarea') || {}).value || '') !== ''",
                           timeout=30000)  # the marker boxes appear under another trainer, filled from the template
    assert page.locator("#response-marker textarea").input_value() == CHATML[1]
    assert "Unsloth train_on_responses_only" in page.locator("#status").inner_text()
    page.get_by_role("tab", name="Compare modes").click()
    outlined = page.locator("#mode-compare .sv-changed")
    outlined.first.wait_for(timeout=15000)
    texts = {t.strip() for t in outlined.all_inner_texts()}
    assert {"<|im_start|>", "assistant"} <= texts, texts
    assert "TRL 1.16 · Assistant turns only" in page.locator("#mode-compare").inner_text()
    page.screenshot(path=str(tmp_path / "compare.png"))


def test_export_migration_claims_hold_in_the_real_libraries():
    """The Export tab's claim "TRL 1.16 with the text split at the marker gives the same labels" (or "these tokens
    differ"), checked with TRL 1.16's real SFTTrainer against TRL 0.19.1's real collator."""
    from sftviz.export import migration, split_at_marker
    from trl_reference import trl_rows

    tok = tokenizer("gpt2", None)
    for case_id, claim in (("text-qa-gpt2-response-only", "12 of 12"), ("alpaca-gpt2", "0 of 12")):
        case = next(c for c in CASES if c[0] == case_id)
        instruction, response = case[4]
        md = migration(rows_of(case[1]), tok, Options(rules="trl-0.19", response=response, instruction=instruction))
        assert f"**{claim}**" in md and "split into prompt/completion" in md, md
        real_016, _, _ = trl_rows(split_at_marker(rows_of(case[1]), response), tok, "completion")
        real_019 = oracle("trl-0.19")[case_id]["records"]
        assert [r["input_ids"] for r in real_016] == [r["input_ids"] for r in real_019]
        differ = [[p for p, (a, b) in enumerate(zip(x["labels"], y["labels"])) if a != b]
                  for x, y in zip(real_016, real_019)]
        if claim == "12 of 12":
            assert not any(differ) and "Identical" in md
        else:  # the EOS: TRL 1.16 trains it, 0.19's collator masks it (pad == eos)
            assert all(d == [len(r["input_ids"]) - 1] for d, r in zip(differ, real_016))
            assert f"row 0: TRL 1.16 also trains `<|endoftext|>` (positions {differ[0][0]})" in md


def test_hostile_markers_get_one_line_and_bounded_work(hosted_app):
    """Markers arrive from the page, the API and links: too long, ids outside the vocabulary, or a long repeated marker against long repeated text (the doctor's near-match search
    is bounded) each end in one line or a finding, never a traceback."""
    import time

    from sftviz.doctor import diagnose
    page = hosted_app
    form = {**page.DEFAULT_FORM, "sample": "quiz_chat", "trainer": "trl-0.19"}
    for marker, words in (("x" * 10_000, "a marker is at most 200"), ("[99999999]", "is not in this tokenizer")):
        out = page.refresh({**form, "response-marker": marker})
        assert words in out["status"] and "Traceback" not in out["status"], out["status"]
    assert page.from_url({"trainer": "unsloth", "response": "y" * 5000})["response-marker"] == "y" * 200
    assert page.from_url({"trainer": "nope"})["trainer"] == "trl"
    tok = tokenizer("bundled", None)
    started = time.perf_counter()
    f = {x.check: x for x in diagnose([{"text": "a" * 6000}] * 30, tok,
                                      Options(rules="trl-0.19", response="b" + "a" * 199))}
    assert f["marker_not_found"].count == 30 and time.perf_counter() - started < 20


def test_compare_any_two_trainers_outlines_what_the_real_libraries_disagree_on(hosted_app):
    """Compare modes can set TRL 0.19's collator beside Unsloth: on the bundled chat the outlined tokens are the
    ones where the two real libraries' labels differ (the newline after <|im_end|>: TRL 0.19's span runs to the
    next instruction marker, Unsloth's stops at the EOS)."""
    import re
    form = {**hosted_app.DEFAULT_FORM, "sample": "quiz_chat", "trainer": "trl-0.19", "compare-with": "unsloth"}
    out = hosted_app.refresh(form)
    assert out["response-marker"]["value"] == CHATML[1] and out["instruction-marker"]["value"] == CHATML[0]
    assert out["response-marker"]["visible"] and out["mode"]["interactive"] is False  # TRL 1.16's modes: not used
    a, b = (oracle(r)["bundled-chat"]["records"][0]["labels"] for r in ("trl-0.19", "unsloth"))
    differ = sum((x == -100) != (y == -100) for x, y in zip(a, b))
    assert differ >= 1 and f"{differ} tokens change role" in out["mode-compare"]
    assert len(re.findall(r'class="sv-tok sv-changed"', out["mode-compare"])) == 2 * differ  # outlined on both sides
    assert "TRL 0.19 DataCollatorForCompletionOnlyLM" in out["mode-compare"] and "Unsloth" in out["mode-compare"]


def test_doctor_instruction_marker_missing_and_pad_eos_for_a_tokenizer_with_no_pad():
    """TRL 0.19 masks a whole row whose instruction marker is missing (the oracle: every label -100); with GPT-2,
    which has no pad token, the usual pad = eos recipe masks the EOS too."""
    f = findings("gsm8k_qa", "gpt2", None, "trl-0.19", "### Human:", "Answer:")
    assert f["instruction_not_found"].count == 12 and "header_not_trained" not in f
    assert all(max(r["labels"]) == -100
               for r in oracle("trl-0.19")["text-qa-gpt2-instruction-missing"]["records"])
    f = findings("alpaca", "gpt2", None, "trl-0.19", "### Instruction:\n", "### Response:\n")
    assert f["pad_masks_eos"].count == 12


def test_proposed_markers_agree_with_unsloths_auto_detection():
    """markers.propose reads the chat template as Unsloth's get_chat_template_parts does (bundled ChatML, Phi-3)."""
    from sftviz.markers import propose
    python = os.path.join(ROOT, VENVS["unsloth"], "bin", "python")
    if not os.path.exists(python):
        oracle("unsloth")  # fails or skips with the reason
    code = ("import sys; from unsloth_zoo.dataset_utils import get_chat_template_parts as g; "
            "from transformers import AutoTokenizer as A; print(repr(g(A.from_pretrained(sys.argv[1]))))")
    for name in ("bundled", "phi-3-mini"):
        path = TOKENIZERS[name] or default_path()
        done = subprocess.run([python, "-c", code, path], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": "", "UNSLOTH_ZOO_DISABLE_GPU_INIT": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == repr(propose(tokenizer(name, None)))


def test_cli_help_works_for_every_command():
    for command in ("inspect", "doctor", "export", "train"):
        code, out, err = cli(command, "--help")
        assert code == 0 and "usage" in out, err
    assert "--response-part" in cli("inspect", "--help")[1]


def test_adversarial_marker_data_is_labelled_in_linear_time(hosted_app, monkeypatch):
    """A hostile visitor's rows: every instruction marker before every response marker (the collator's pairs
    masked one by one was quadratic), and a marker made of the text's own repeated token. And a doctor that runs
    out of its budget leaves the loaded view on screen, with the reason in the Doctor tab."""
    import time

    from sftviz import bounded, view
    tok = tokenizer("bundled", None)
    rows = [{"text": "x" * 10_000 + "y" * 10_000}] * 20
    started = time.perf_counter()
    prepare(rows, tok, Options(max_length=None, rules="trl-0.19", response="y", instruction="x"))
    prepare(rows, tok, Options(max_length=None, rules="trl-0.19", response="x" * 200))
    assert time.perf_counter() - started < 15

    def too_slow(vw):
        raise bounded.BudgetExceeded("checking quiz_chat took longer than 10 s and was stopped")
    monkeypatch.setattr(view, "findings", too_slow)
    out = hosted_app.refresh({**hosted_app.DEFAULT_FORM, "sample": "quiz_chat", "trainer": "unsloth"})
    assert "view-request" in out and "took longer than 10 s" in out["doctor-report"]
