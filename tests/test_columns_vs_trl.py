"""Every set of columns people really have, read as TRL 1.16 reads it: TRL's labels, or TRL's refusal for
the same reason, with the default and a named text field (the oracle is the real SFTTrainer, on the shared
GSM8K and Alpaca rows)."""

import pytest

from conftest import get_tokenizer, shared_path
from sftviz import data
from sftviz.labels import Options, prepare
from trl_reference import trl_rows

pytest.importorskip("trl")


def gsm8k(n=6):
    """GSM8K rows in every column a learner might have: the prompt, the answer, and both glued in a text."""
    rows = []
    for r in data.load(shared_path("assets", "data", "gsm8k_test.jsonl"), limit=n):
        prompt, answer = f"Question: {r['question']}\nAnswer:", f" {r['answer']}"
        rows.append({"question": r["question"], "prompt": prompt, "answer": answer, "completion": answer,
                     "text": prompt + answer,
                     "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return rows


def alpaca(n=6):
    rows = []
    for r in data.load(shared_path("assets", "data", "gpteacher_roleplay_alpaca.jsonl"), limit=n):
        rows.append({**r, "text": f"### Instruction:\n{r['instruction']}\n\n### Response:\n{r['output']}"})
    return rows


GSM8K_COLUMNS = [
    ("text",), ("prompt", "completion"), ("prompt", "completion", "text"), ("prompt", "answer", "text"),
    ("prompt", "text"), ("prompt", "answer"), ("prompt",), ("question", "answer"), ("question", "answer", "text"),
    ("completion", "text"), ("messages",), ("messages", "text"),
]
ALPACA_COLUMNS = [("instruction", "input", "output"), ("instruction", "input", "output", "text")]


def file_with(rows, columns, text_field):
    """The rows with only these columns, `text` renamed to the text field (e.g. `formatted`)."""
    return [{(text_field if c == "text" else c): r[c] for c in columns} for r in rows]


def trl_or_refusal(rows, tok, mode, text_field):
    """TRL's (input_ids, labels) per kept row, or the exception TRL stops with."""
    try:
        records, _, _ = trl_rows(rows, tok, mode, 1024, text_field=text_field)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        return e
    return [(r["input_ids"], r["labels"]) for r in records]


def ours(rows, tok, mode, text_field, columns="trl"):
    decision = data.decide(rows[0], text_field, columns)
    prep = prepare(data.to_trl(rows, decision, text_field), tok, Options(mode, 1024, text_field=text_field))
    return decision, [(s.input_ids, s.labels) for s in prep.sequences if not s.dropped]


def check_as_trl_reads(rows, tok, mode, text_field):
    expected = trl_or_refusal(rows, tok, mode, text_field)
    try:
        decision, got = ours(rows, tok, mode, text_field)
    except data.TRLStops as stop:
        # TRL stops, for the same reason: a `prompt` column and no `completion`
        assert isinstance(expected, KeyError) and expected.args == ("completion",), expected
        assert "KeyError: 'completion'" in str(stop) and "`prompt`" in str(stop)
        return "stops"
    if decision.reading == "map":  # TRL cannot read the file at all: the mapping is the only way in
        assert isinstance(expected, KeyError) and expected.args == (text_field,), expected
        assert decision.as_is == f"KeyError: {text_field!r}"
        return "mapped"
    assert not isinstance(expected, Exception), f"TRL refused ({expected!r}) but sftviz read {decision}"
    assert got == expected
    return decision.kind


EXPECTED_KIND = {  # what TRL does with each GSM8K file as it is
    ("text",): "language_modeling", ("prompt", "completion"): "prompt_completion",
    ("prompt", "completion", "text"): "prompt_completion", ("prompt", "answer", "text"): "stops",
    ("prompt", "text"): "stops", ("prompt", "answer"): "stops", ("prompt",): "stops",
    ("question", "answer"): "mapped", ("question", "answer", "text"): "language_modeling",
    ("completion", "text"): "language_modeling", ("messages",): "conversational",
    ("messages", "text"): "conversational",
}


@pytest.mark.parametrize("text_field", ["text", "formatted"])
@pytest.mark.parametrize("columns", GSM8K_COLUMNS, ids="+".join)
def test_gsm8k_columns_read_as_trl_reads_them(columns, text_field):
    rows = file_with(gsm8k(), columns, text_field)
    tok = get_tokenizer("default" if "messages" in columns else "gpt2")
    expected = EXPECTED_KIND[columns]
    assert check_as_trl_reads(rows, tok, "auto", text_field) == expected
    if expected not in ("stops", "mapped"):
        assert check_as_trl_reads(rows, tok, "whole", text_field) == expected


@pytest.mark.parametrize("text_field", ["text", "formatted"])
@pytest.mark.parametrize("columns", ALPACA_COLUMNS, ids="+".join)
def test_alpaca_columns_read_as_trl_reads_them(columns, text_field):
    got = check_as_trl_reads(file_with(alpaca(), columns, text_field), get_tokenizer("default"), "auto", text_field)
    assert got == ("language_modeling" if "text" in columns else "mapped")


def test_a_text_field_that_is_not_there_is_trls_keyerror():
    rows = file_with(gsm8k(), ("question", "answer", "text"), "text")
    tok = get_tokenizer("gpt2")
    assert check_as_trl_reads(rows, tok, "auto", "body") == "mapped"  # no `body`: TRL stops; the mapping reads it


@pytest.mark.parametrize("text_field", ["text", "formatted"])
def test_the_learners_file_stops_and_each_fix_is_trls_labels_for_the_fixed_file(text_field):
    """prompt / answer / text: TRL stops. Fix 1 drops `prompt` (whole text trained); fix 2 renames `answer` to
    `completion` and drops the text (answer only). Each fix's labels are TRL's for the file so fixed."""
    rows = file_with(gsm8k(), ("prompt", "answer", "text"), text_field)
    tok = get_tokenizer("gpt2")
    with pytest.raises(data.TRLStops) as stop:
        data.decide(rows[0], text_field)
    assert stop.value.fixes == ("drop_prompt", "map")
    dropped = [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    renamed = [{"prompt": r["prompt"], "completion": r["answer"]} for r in rows]
    for fix, fixed_file, kind in (("drop_prompt", dropped, "language_modeling"), ("map", renamed, "prompt_completion")):
        expected = trl_or_refusal(fixed_file, tok, "auto", text_field)
        decision, got = ours(rows, tok, "auto", text_field, fix)
        assert decision.kind in (kind, "prompt_answer") and got == expected
    whole = ours(rows, tok, "auto", text_field, "drop_prompt")[1]
    answer = ours(rows, tok, "auto", text_field, "map")[1]
    assert all(-100 not in labels for _, labels in whole)  # every token trained
    assert all(labels[0] == -100 and labels[-1] != -100 for _, labels in answer)  # the prompt is context


def test_prompt_completion_beside_text_puts_the_eos_on_the_text():
    """TRL appends the EOS to the text field when there is one, even on the prompt-completion path: the
    completion then ends without EOS. sftviz mirrors it (the oracle agrees), and the doctor says so."""
    from sftviz import doctor

    rows = file_with(gsm8k(), ("prompt", "completion", "text"), "text")
    tok = get_tokenizer("gpt2")
    expected = trl_or_refusal(rows, tok, "auto", "text")
    assert all(ids[-1] != tok.eos_token_id for ids, _ in expected)
    found = {f.check: f for f in doctor.diagnose(rows, tok, Options("auto", 1024))}
    assert "columns" in found and "EOS" in found["columns"].explanation


def test_the_doctor_names_columns_trl_ignores():
    from sftviz import doctor

    rows = file_with(gsm8k(), ("question", "answer", "text"), "text")
    found = {f.check: f for f in doctor.diagnose(rows, get_tokenizer("gpt2"), Options("auto", 1024))}
    assert found["columns"].severity == "info"
    assert "`question`" in found["columns"].title and "`answer`" in found["columns"].title


def text_of(html_text):
    """What a reader sees of the page's HTML (tags gone, backticked names shown as code: plain here)."""
    import html
    import re
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def write_jsonl(path, rows):
    import json
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cli_text_field_beside_other_columns_gives_trls_labels(tmp_path, capsys):
    """`inspect FILE --text-field F --json`: TRL's labels for a file whose text field sits beside question/answer."""
    import json

    from sftviz import cli
    rows = file_with(gsm8k(), ("question", "answer", "text"), "formatted")
    path = write_jsonl(tmp_path / "learner.jsonl", rows)
    expected = trl_or_refusal(rows, get_tokenizer("default"), "auto", "formatted")
    assert cli.main(["inspect", path, "--text-field", "formatted", "--json"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["input_ids"], r["labels"]) for r in got] == expected
    assert all(-100 not in r["labels"] for r in got)  # TRL trains the whole text
    # without --text-field there is no `text`: TRL cannot read the file, and the mapping is the way in
    assert cli.main(["inspect", path, "--json"]) == 0
    mapped = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["labels"][0] == -100 for r in mapped)


def test_cli_says_trls_refusal_in_one_line_and_exits_2(tmp_path, capsys):
    from sftviz import cli
    path = write_jsonl(tmp_path / "learner.jsonl", file_with(gsm8k(), ("prompt", "answer", "text"), "text"))
    for command in ("inspect", "doctor", "export"):
        assert cli.main([command, path]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "KeyError: 'completion'" in err and "--columns map" in err, err


def test_page_offers_the_mapping_as_one_choice_where_trl_reads_the_text(hosted_app, tmp_path):
    """question / answer / text: the page shows TRL's reading (the whole text), and offers the mapping."""
    from conftest import page_form
    from sftviz import uploads
    rows = file_with(gsm8k(), ("question", "answer", "text"), "text")
    path = uploads.receive(write_jsonl(tmp_path / "qa_text.jsonl", rows), "session-a")
    form = page_form(**{"source-tab": "upload", "upload-path": path})
    out = hosted_app.refresh(form)
    status = text_of(out["status"])
    assert "ignores question, answer" in status and "map question/answer" in status
    assert "'Question: {{ question }}\\nAnswer:'" in status  # the template, shown before the click
    assert out["columns"]["visible"] and len(out["columns"]["choices"]) == 2
    tokens = lambda view: view.split('class="sv-tokens"')[1]  # noqa: E731  (after the legend)
    assert 'data-role="context"' not in tokens(out["token-view"])  # the whole text is trained, as TRL does
    mapped = hosted_app.refresh({**form, "columns": data.READINGS["map"]})
    assert 'data-role="context"' in tokens(mapped["token-view"]) and mapped["view-request"].columns == "map"
    assert "KeyError" not in text_of(mapped["status"]) and "reads only its text" in text_of(mapped["status"])
    # the export hands the same choice to a real run
    assert "to_prompt_completion" in mapped["export-script"] and "dataset_text_field" not in mapped["export-script"]
    assert "dataset_text_field='text'" in out["export-script"]  # the text as TRL reads it: the field it reads


def test_learners_file_on_the_page_refuses_training_and_exports_each_fix(hosted_app):
    from conftest import page_form
    form = page_form(sample="quiz_prompt_answer_text")
    out = hosted_app.refresh(form)
    assert "KeyError: 'completion'" in text_of(out["status"]) and out["columns"]["visible"]
    assert 'data-severity="error"' in out["doctor-report"] and "TRL stops on this file" in text_of(out["doctor-report"])
    train = list(hosted_app.train_stream({"view-request": out["view-request"], "preset": "Quick demo",
                                          "train-modes": ["whole"], "train-steps": 2, "train-lr": 1e-3,
                                          "train-seed": 0, "train-model": "tiny", "train-weighted": False,
                                          "train-weight": 0.1}))
    assert "Choose a fix" in text_of(train[-1]["train-status"])
    dropped = hosted_app.refresh({**form, "columns": data.READINGS["drop_prompt"]})
    assert "remove_columns(['prompt'])" in dropped["export-script"]
    assert "columns=drop_prompt" in dropped["share"]
    nxt = hosted_app.navigate({"view-request": out["view-request"], "example-index": 0}, 1)
    assert nxt["example-index"] == 1 and nxt["token-view"].count('class="sv-tokens"') == 2


def test_the_template_editor_says_when_a_box_was_empty_and_when_the_answer_is_given_twice(hosted_app):
    """An emptied box gets the default, and says so under the preview; a prompt template that already holds the
    answer (the default completion then trains it again) is warned about, as the doctor warns on every row."""
    from conftest import page_form
    out = hosted_app.refresh(page_form(sample="quiz_question_answer",
                                       **{"prompt-template": "Q: {{ question }}\nA: {{ answer }}",
                                          "completion-template": ""}))
    preview = out["template-preview"]["value"]
    assert "The completion template was empty: the default" in preview
    assert out["completion-template"]["value"]  # the default is in the box, where the user sees it
    assert "completion repeats the prompt" in preview
    ok = hosted_app.refresh(page_form(sample="quiz_question_answer"))  # the default mapping: nothing to say
    assert "sv-preview-note" not in ok["template-preview"]["value"]
