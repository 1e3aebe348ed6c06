"""One source of truth: the CLI and the page load, map and label data the same way, refuse the same bad
options with the same words, and every list of modes / strategies / views is read from one table."""

import html
import json
import re

import pytest

from conftest import page_form, shared_path
from sftviz import cli, data, labels, packing, view
from sftviz.labels import MODES, Mode, Options, TRLRefusal, prepare

SPAN = re.compile(r'<span class="sv-tok[^"]*" data-role="(\w+)" data-pos="(\d+)"')


def cli_json(capsys, *args):
    """`python -m sftviz inspect ... --json`, in-process: (exit code, records, stderr)."""
    code = cli.main(["inspect", *args, "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def form(source, mode="completion", max_length=256, packing=False, prompt="", completion="", index=0):
    """The page's form for a bundled sample, or (a path) a file as if this session had uploaded it."""
    from sftviz import page as app
    upload = "/" in source
    return {**page_form(**{"source-tab": "upload" if upload else "sample", "sample": source,
                           "upload-path": source if upload else None, "prompt-template": prompt,
                           "completion-template": completion, "mode": MODES[mode].label, "max-length": max_length,
                           "packing": packing, "example-index": index}), "_app": app}


def page(source, **kw):
    f = form(source, **kw)
    return f.pop("_app").refresh(f)


def dataset(name):
    if name in data.samples():
        return name
    return shared_path("assets", "data", name)


TEMPLATES = {  # a user's own mapping for each shape that needs one
    "question_answer": ("Q: {{ question }}\nA:", " {{ answer }}"),
    "prompt_answer": ("[{{ prompt }}]", " {{ answer }}"),
    "alpaca": ("{{ instruction }} {{ input }}\n", "{{ output }}"),
    "language_modeling": ("{{ text[:40] }}", "{{ text[40:] }}"),  # a text, mapped by choice
}


@pytest.mark.parametrize("name", ["quiz_prompt_completion", "quiz_chat", "quiz_question_answer", "quiz_prompt_answer_text",
                                  "gsm8k_test.jsonl", "gpteacher_roleplay_alpaca.jsonl",
                                  "oasst_en95_messages.jsonl", "c4_demo_text.jsonl"])
@pytest.mark.parametrize("with_template", [False, True])
def test_cli_json_labels_equal_what_the_page_shows(capsys, name, with_template):
    source = dataset(name)
    kind = data.detect(data.load(source, limit=1))
    prompt, completion = TEMPLATES.get(kind, ("{{ prompt }}!", "{{ completion }}")) if with_template else ("", "")
    args = [source, "--mode", "completion", "--max-length", "256"]
    if with_template:
        args += ["--prompt-template", prompt, "--completion-template", completion]
    code, records, err = cli_json(capsys, *args)
    shown = page(source, prompt=prompt, completion=completion)
    if kind == "prompt_answer" and not with_template:
        # the learner's prompt/answer/text: TRL stops, and both say so in the same words
        assert code == 2 and "KeyError: 'completion'" in err and "--columns drop_prompt" in err
        assert "KeyError: &#x27;completion&#x27;" in shown["status"] and shown["view-request"].columns == "trl"
        return
    if with_template and kind in data.TRL_TYPES and kind != "language_modeling":
        # the same rule everywhere: data already in TRL's format is used as it is; a template is refused
        assert code == 2 and "already in TRL's" in err
        assert "already in TRL's" in html.unescape(shown["status"]) and "sv-error" in shown["status"]
        return
    assert code == 0, err
    v = view.open_view(view.ViewRequest(source, prompt_template=prompt or None, completion_template=completion or None,
                                        options=Options("completion", 256)))
    assert len(records) == v.n == len(v.loaded.rows)
    for rec, seq in zip(records, v.prep.sequences):
        assert rec["input_ids"] == seq.input_ids and rec["labels"] == seq.labels
        assert rec.get("dropped", False) == seq.dropped
    # and the page's rendered token view (a row of its padded batch) starts with exactly these roles
    for i in (0, len(records) - 1):
        token_view = page(source, prompt=prompt, completion=completion, index=i)["token-view"]
        roles = [r for r, _ in SPAN.findall(token_view)]
        assert roles[:len(records[i]["roles"])] == records[i]["roles"]
        assert set(roles[len(records[i]["roles"]):]) <= {"masked"}


def test_unknown_mode_and_strategy_are_refused_with_trls_words(capsys):
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    with pytest.raises(ValueError) as trl_error:
        pack_dataset(Dataset.from_dict({"input_ids": [[1, 2]]}), 4, strategy="first_fit")
    with pytest.raises(ValueError) as ours:
        Options(packing=True, packing_strategy="first_fit")
    assert str(ours.value) == str(trl_error.value)
    with pytest.raises(ValueError, match="Invalid packing strategy 'first_fit'"):
        packing.pack([[1, 2]], [[1, 2]], 4, "first_fit")
    with pytest.raises(ValueError, match=r"Invalid mode 'prompt_only', must be one of \('completion', "):
        Options("prompt_only")

    # the CLI: one line, exit 2
    for args in (["inspect", "quiz_chat", "--mode", "prompt_only"],
                 ["inspect", "quiz_chat", "--packing", "--packing-strategy", "first_fit"],
                 ["train", "quiz_chat", "--modes", "whole,prompt_only"], ["train", "quiz_chat", "--modes", "auto"]):
        assert cli.main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and ("invalid choice" in err or "Invalid mode" in err
                                                        or "not offered for training" in err), err

    # the page (its handlers, as its API calls them): a message, and the next request works
    from sftviz import page as app
    f = form("quiz_chat")
    f.pop("_app")
    assert "Invalid mode 'prompt_only'" in html.unescape(app.refresh({**f, "mode": "prompt_only"})["status"])
    bad = html.unescape(app.refresh({**f, "packing": True, "packing-strategy": "first_fit"})["status"])
    assert str(trl_error.value) in bad
    assert "sv-error" not in app.refresh(f)["status"]


@pytest.fixture
def extra_mode(monkeypatch):
    """A mode that is one new row of labels.MODES: both of TRL's flags at once (assistant turns of the
    completion, for conversational prompt-completion data)."""
    mode = Mode("assistant_completion", "Assistant turns of the completion", "assistant completion", True, True,
                "only the assistant's tokens inside the completion are trained", "as assistant only")
    monkeypatch.setitem(labels.MODES, mode.name, mode)
    return mode


def test_a_new_mode_is_one_table_row(extra_mode, capsys):
    import app
    from trl_reference import trl_rows

    from conftest import get_tokenizer

    # the CLI offers it,
    code, records, err = cli_json(capsys, "quiz_chat", "--mode", extra_mode.name, "--limit", "2")
    assert code == 0, err
    assert records[0]["labels"] == prepare(data.load("quiz_chat", limit=2), view.load(
        view.ViewRequest("quiz_chat")).tok, Options(extra_mode.name)).sequences[0].labels
    # the page lists it, and so does the training panel,
    demo = app.build()
    radio = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "mode")
    assert extra_mode.label in [c[0] for c in radio.choices]
    boxes = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "train-modes")
    assert extra_mode.label in [c[0] for c in boxes.choices]
    # and its labels are TRL's, through the oracle that reads the same table.
    rows = [{"prompt": [{"role": "user", "content": "2+2?"}],
             "completion": [{"role": "assistant", "content": "4"}]},
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
             "completion": [{"role": "assistant", "content": "Hello."}]}]
    tok = get_tokenizer("default")
    expected, _, _ = trl_rows(rows, tok, extra_mode.name, 1024)
    got = prepare(rows, tok, Options(extra_mode.name))
    assert [s.labels for s in got.sequences] == [e["labels"] for e in expected]
    assert any(lab != -100 for s in got.sequences for lab in s.labels)


def test_a_new_strategy_and_a_new_view_are_one_row_each(monkeypatch):
    import app
    from sftviz import page
    # a strategy: one row in packing.STRATEGIES (here bfd under another name)
    monkeypatch.setitem(packing.STRATEGIES, "bfd_again",
                        packing.Strategy("bfd_again", True, "bfd, again", packing.STRATEGIES["bfd"].pack_chunk))
    rows = data.load("quiz_prompt_completion", limit=30)
    tok = view.load(view.ViewRequest("quiz_prompt_completion")).tok
    a = prepare(rows, tok, Options(max_length=128, packing=True, packing_strategy="bfd_again"))
    b = prepare(rows, tok, Options(max_length=128, packing=True, packing_strategy="bfd"))
    assert [s.labels for s in a.sequences] == [s.labels for s in b.sequences] and a.padding_free
    assert cli.build_parser().parse_args(["inspect", "x", "--packing-strategy", "bfd_again"]).packing_strategy \
        == "bfd_again"
    # a view: one render function and one row in view.EXAMPLE_TABS
    monkeypatch.setattr(view, "EXAMPLE_TABS", view.EXAMPLE_TABS + [
        view.Tab("Token ids", "id-view", lambda v, i: f"<p>{v.prep.sequences[i].input_ids}</p>")])
    demo = app.build()
    assert any(getattr(c, "elem_id", None) == "id-view" for c in demo.blocks.values())
    f = form("quiz_prompt_completion")
    f.pop("_app")
    out = page.refresh(f)
    assert out["id-view"].startswith("<p>[") and "token-view" in out
    assert set(page.navigate({"view-request": out["view-request"], "example-index": 0}, 1)) >= {"id-view", "token-view"}


def test_answer_only_means_assistant_turns_for_chats_everywhere():
    from sftviz import train
    chat = data.load_trl("quiz_chat").rows
    pc = data.load_trl("quiz_prompt_completion").rows
    assert labels.answer_mode(chat) == "assistant" and labels.answer_mode(pc) == "completion"
    assert labels.answer_mode([{"conversations": [{"from": "human", "value": "hi"}]}]) == "assistant"
    assert view.compare_modes(chat) == ("whole", "assistant")
    assert train.resolve_modes(chat, ["whole", "completion"]) == ("whole", "assistant")
    assert train.resolve_modes(pc, ["whole", "completion"]) == ("whole", "completion")
    with pytest.raises(TRLRefusal):
        prepare(pc, view.load(view.ViewRequest("quiz_prompt_completion")).tok, Options("assistant"))


def test_a_new_doctor_check_is_one_detector_and_one_report(monkeypatch):
    from sftviz import doctor
    from conftest import get_tokenizer

    rows = data.load_trl("quiz_prompt_completion").rows
    tok = get_tokenizer("default")
    lengths = [len(s.input_ids) for s in prepare(rows, tok, Options("completion", None)).sequences]
    cutoff = sorted(lengths)[len(lengths) // 2]
    expected = [i for i, n in enumerate(lengths) if n < cutoff]

    def short(example, env):  # a made-up check: examples shorter than the median
        return [] if len(example[0].input_ids) < cutoff else None

    def report_short(c):
        return c.found("short", "info", "Short examples", c.sc.tallies["short"], "Few tokens.", "None needed.")

    monkeypatch.setattr(doctor, "DETECTORS", doctor.DETECTORS + (doctor.Detector("short", "untruncated", short),))
    monkeypatch.setattr(doctor, "REPORTS", doctor.REPORTS + (report_short,))
    assert expected and len(expected) < len(rows)
    found = {f.check: f for f in doctor.diagnose(rows, tok, Options("completion", None))}
    assert found["short"].count == len(expected)
    assert [e["index"] for e in found["short"].examples] == expected[:doctor.SHOWN]
    # the streaming pass (chunks, two forked workers) counts it the same way
    streamed, _ = doctor.diagnose_file(data.samples()["quiz_prompt_completion"], tok, Options("completion", None),
                                       chunk_rows=37, workers=2)
    assert {f.check: f.count for f in streamed}["short"] == len(expected)
