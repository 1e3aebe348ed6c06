"""The bad-input corpus: malformed files, hostile form values and impossible training settings, through
the core, the CLI, the page's handlers (as its API calls them) and the real browser. Each case asserts the
one-line message, and that the next normal request works (and, on the page, that the last good view
still does)."""

import html
import json
import os
import shutil

import pytest

from conftest import as_visitor, page_form
from sftviz import cli, data, labels, train

GOOD = ('{"prompt": "2+2?", "completion": " 4"}\n{"prompt": "3+3?", "completion": " 6"}\n'
        '{"prompt": "1+1?", "completion": " 2"}\n')

FILES = {  # name -> (content, the message it must give)
    "empty.jsonl": (b"", "empty.jsonl: the file is empty"),
    "blank.jsonl": (b"\n\n  \n", "blank.jsonl: the file has no rows"),
    "binary.jsonl": (b'{"text": "a"}\n\x00\x01\x02\x89PNG\n', "line 2 has NUL bytes: this is a binary file"),
    "latin1.jsonl": ('{"text": "caf\u00e9 cr\u00e8me"}\n'.encode("latin-1"), "line 1 is not UTF-8 text"),
    "ragged.csv": (b"prompt,completion\nWhat?,This\nWhy?,Because,extra\n", "CSV line 3 has 3 fields, the header has 2"),
    "header_only.csv": (b"prompt,completion\n", "header_only.csv: the file has no rows"),
    "twice.csv": (b"prompt,prompt\na,b\n", "the header repeats a column name"),
    "bad_json.jsonl": (GOOD.encode() + b'{"prompt": "x", completion: 1}\n', "line 4 is not valid JSON"),
    "not_object.jsonl": (b"[1, 2]\n", "line 1 is a JSON list, not an object with columns"),
    "scalar.json": (b"42", "expected a JSON array of objects"),
    "ragged_columns.json": (b'{"prompt": ["a", "b"], "completion": ["c"]}', "column lists have different lengths"),
    "own_columns.csv": (b"input,target\na,b\n", "unrecognised columns `input`, `target`"),
    "missing_completion.jsonl": (GOOD.encode() + b'{"prompt": "5+5?"}\n', "row 3: 'completion' must be text, not NoneType"),
    "number_completion.jsonl": (b'{"prompt": "5+5?", "completion": 10}\n', "row 0: 'completion' must be text, not int"),
    "mixed_shapes.jsonl": (GOOD.encode() + b'{"foo": 1}\n', "row 3 has no 'text', no prompt/completion and no messages"),
    "content_list.jsonl": (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}\n',
                           "message 0 of 'messages': 'content' must be text, not list"),
    "content_number.jsonl": (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 4}]}\n',
                             "message 1 of 'messages': 'content' must be text, not int"),
    "no_role.jsonl": (b'{"messages": [{"content": "hi"}]}\n', "message 0 of 'messages' has no text 'role'"),
    "sharegpt_string.jsonl": (b'{"conversations": [{"from": "human", "value": "hi"}]}\n{"conversations": "hi"}\n',
                              "row 1: 'conversations' must be a list of messages"),
    "notes.txt": (b"hello\n", "unsupported file type .txt"),
    "corrupt.parquet": (b"PAR1" + b"not a parquet body " * 8 + b"PAR1", "corrupt.parquet: not a readable Parquet file"),
    "deep.jsonl": (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
                   "deep.jsonl: line 1 is nested too deeply"),
    "huge_number.jsonl": (b'{"text": "a", "n": ' + b"9" * 5000 + b"}\n",
                          "huge_number.jsonl: line 1 has a number with more than 4,300 digits"),
    "wide.csv": (",".join(f"c{i}" for i in range(200_000)).encode() + b"\n" + b"x," * 199_999 + b"x\n",
                 "unrecognised columns `c0`, `c1`, `c2`, `c3`, `c4`, `c5`, `c6`, `c7` and 199,992 more"),
}


def nested_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"prompt": [{"q": "2+2?", "lang": "en"}], "completion": [" 4"]}), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    for name, (content, _) in FILES.items():
        (folder / name).write_bytes(content)
    nested_parquet(folder / "nested.parquet")
    (folder / "good.jsonl").write_text(GOOD)
    (folder / "one_row.jsonl").write_text('{"prompt": "Only one?", "completion": " Yes."}\n')
    return folder


ALL_FILES = {**{n: m for n, (_, m) in FILES.items()}, "nested.parquet": "row 0: 'prompt' must be text, not dict"}


# --- core -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL_FILES))
def test_core_refuses_bad_files_in_one_line(files, name):
    with pytest.raises(ValueError) as e:
        data.load_trl(str(files / name))
    assert ALL_FILES[name] in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 500
    assert len(data.load_trl(str(files / "good.jsonl")).rows) == 3


@pytest.mark.parametrize("name", sorted(ALL_FILES))
def test_the_doctors_streaming_pass_says_the_same_as_the_page(files, name):
    """The one loading path: the doctor's pass over every row (chunks of 2 rows here, so a bad row sits in a
    later chunk) gives the page's message, naming the same row of the dataset."""
    from conftest import get_tokenizer
    from sftviz import doctor
    with pytest.raises(ValueError) as e:
        doctor.diagnose_file(str(files / name), get_tokenizer("default"), labels.Options("completion"), chunk_rows=2,
                             workers=1)
    assert ALL_FILES[name] in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("make,needle", [
    (lambda: labels.Options("nope"), "Invalid mode 'nope'"),
    (lambda: labels.Options(packing_strategy="first_fit"), "Invalid packing strategy 'first_fit'"),
    (lambda: labels.Options(max_length=0), "max_length must be a whole number of tokens from 1"),
    (lambda: labels.Options(max_length=10 ** 20), "max_length must be a whole number of tokens from 1"),
    (lambda: labels.Options(max_length=True), "max_length must be a whole number"),
    (lambda: train.TrainConfig.preset("quick", steps=0), "steps must be a whole number from 1 to 20,000"),
    (lambda: train.TrainConfig.preset("quick", steps=10 ** 9), "steps must be a whole number from 1 to 20,000"),
    (lambda: train.TrainConfig.preset("quick", learning_rate=float("inf")), "the learning rate must be"),
    (lambda: train.TrainConfig.preset("quick", learning_rate=float("nan")), "the learning rate must be"),
    (lambda: train.TrainConfig.preset("quick", seed=2 ** 70), "seed must be a whole number from 0"),
    (lambda: train.TrainConfig.preset("quick", steps=2.5), "steps must be a whole number"),
    (lambda: train.TrainConfig.preset("fastest"), "unknown preset 'fastest'"),
    (lambda: data.load("./no/such/folder"), "is not a bundled sample, a file or a folder"),
    (lambda: data.load("x", where="sample"), "'x' is not a bundled sample"),
    (lambda: data.load("/etc/passwd", where="hub"), "is not a Hub dataset id"),
    (lambda: data.load("owner/name", config="../../etc", where="hub"), "is not a dataset config"),
    (lambda: data.to_trl([{"question": "q", "answer": "a"}], mapping=data.Mapping("{{ question ", "x")),
     "template error"),
    (lambda: data.to_trl([{"question": "q", "answer": "a"}], mapping=data.Mapping("{{ question + 1 }}", "x")),
     "template error in row 0: TypeError"),
])
def test_core_refuses_bad_values_in_one_line(make, needle):
    with pytest.raises(ValueError) as e:
        make()
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert labels.Options("whole", 64) and train.TrainConfig.preset("quick", steps=5)


def test_templates_that_write_too_much_are_stopped(monkeypatch):
    monkeypatch.setattr(data, "MAX_TEXT_BYTES", 10_000)
    rows = [{"question": "q", "answer": "a"}] * 10
    with pytest.raises(data.DataError, match="the templates write more than"):
        data.to_trl(rows, mapping=data.Mapping("{{ question * 2000 }}", "{{ answer }}"))
    assert data.to_trl(rows)[0]["prompt"].startswith("Question:")


# --- CLI ----------------------------------------------------------------------------------------------

def cli_fails(capsys, args, needle):
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 2 and needle in err, (args, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert cli.main(["inspect", "quiz_chat", "--limit", "1", "--json"]) == 0  # the next normal command works
    assert json.loads(capsys.readouterr().out.splitlines()[0])["labels"]


@pytest.mark.parametrize("name", ["empty.jsonl", "binary.jsonl", "latin1.jsonl", "ragged.csv", "nested.parquet",
                                  "content_list.jsonl", "scalar.json", "mixed_shapes.jsonl"])
def test_cli_refuses_bad_files_in_one_line(capsys, files, name):
    cli_fails(capsys, ["inspect", str(files / name)], ALL_FILES[name])


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "steps must be a whole number from 1 to 20,000, not 0"),
    (["--steps", "-5"], "steps must be a whole number from 1 to 20,000, not -5"),
    (["--steps", "1000000000"], "steps must be a whole number from 1 to 20,000"),
    (["--lr", "inf"], "the learning rate must be a number above 0"),
    (["--lr", "0"], "the learning rate must be a number above 0"),
    (["--seed", str(2 ** 70)], "seed must be a whole number from 0 to"),
    (["--modes", "auto"], "mode 'auto' is not offered for training"),
    (["--model", "./no/such/model"], "cannot load model"),
])
def test_cli_train_validates_like_the_page(capsys, args, needle):
    cli_fails(capsys, ["train", "quiz_prompt_completion", *args], needle)


def test_cli_train_json_never_writes_nan(capsys):
    assert cli.finite({"loss": float("nan"), "l": [float("inf"), 1.5]}) == {"loss": None, "l": [None, 1.5]}
    assert cli.main(["train", "quiz_prompt_completion", "--steps", "3", "--lr", "1", "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the JSON output"))


# --- the page's handlers ----------------------------------------------------------------------------

@pytest.fixture
def app(hosted_app):
    return hosted_app


def form(**kw):
    return page_form(**{"sample": "quiz_question_answer", **kw})


def uploaded(app, files, name, session="s1"):
    copy = files.parent / f"incoming-{session}-{name}"
    shutil.copy(files / name, copy)
    out = app.receive_upload(str(copy), session)
    return out.get("upload-path"), out


def page_fails(app, out, needle):
    """One line in the status box, nothing else changed; the last good view and a fresh load still work."""
    message = html.unescape(out["status"].replace("<code>", "`").replace("</code>", "`"))  # code spans as typed
    assert "sv-error" in message and needle in message, message
    assert "view-request" not in out and "token-view" not in out  # the last good view stays on the page
    good = app.refresh(form())
    assert "sv-error" not in good["status"] and "data-role" in good["token-view"]
    nxt = app.navigate({"view-request": good["view-request"], "example-index": 0}, 1)
    assert nxt["example-index"] == 1 and "data-role" in nxt["token-view"]


@pytest.mark.parametrize("name", sorted(set(ALL_FILES) - {"notes.txt"}))
def test_page_refuses_bad_uploads_in_one_line(app, files, name):
    path, _ = uploaded(app, files, name)
    page_fails(app, app.refresh(form(**{"source-tab": "upload", "upload-path": path})), ALL_FILES[name])


def test_page_refuses_an_upload_of_the_wrong_type(app, files):
    path, out = uploaded(app, files, "notes.txt")
    assert path is None
    page_fails(app, out, "unsupported file type .txt")


@pytest.mark.parametrize("fields,needle", [
    ({"mode": "nope"}, "Invalid mode 'nope'"),
    ({"packing": True, "packing-strategy": "first_fit"}, "Invalid packing strategy 'first_fit'"),
    ({"max-length": 0}, "max_length must be a whole number of tokens from 1"),
    ({"max-length": 10 ** 20}, "max_length is at most 262,144 tokens on this page"),
    ({"max-length": 12.5}, "max_length must be a whole number"),
    ({"packing": True, "max-length": None}, "max_length` can't be `None`"),
    ({"tokenizer": "no such tokenizer!"}, "is not a Hub tokenizer id"),
    ({"tokenizer": "/etc"}, "is not a Hub tokenizer id"),
    ({"tokenizer": "someone/" + "x" * 200}, "is not a Hub tokenizer id"),
    ({"source-tab": "hub", "hub-id": "/"}, "'/' is not a Hub dataset id"),
    ({"source-tab": "hub", "hub-id": ""}, "type a Hub dataset id"),
    ({"source-tab": "hub", "hub-id": "owner/name ../../etc"}, "is not a dataset config"),
    ({"source-tab": "hub", "hub-id": "owner/name"}, "cannot load dataset 'owner/name' from the Hub"),
    ({"sample": "nope"}, "'nope' is not a bundled sample"),
    ({"source-tab": "upload"}, "no file uploaded in this session yet"),
    ({"prompt-template": "{{ question "}, "template error"),
    ({"prompt-template": "Q: {{ questoin }}"}, "'questoin' is undefined (the row's columns: `question`, `answer`)"),
    ({"prompt-template": "{{ question.__class__.__mro__ }}"}, "template error"),
    ({"sample": "quiz_prompt_completion", "prompt-template": "{{ prompt }}!"}, "already in TRL's prompt_completion"),
])
def test_page_refuses_bad_form_values_in_one_line(app, fields, needle):
    page_fails(app, app.refresh(form(**fields)), needle)


def test_a_mode_that_does_not_apply_to_the_data_shows_the_trl_default_and_says_why(app):
    """Assistant turns on data that is not a chat: TRL refuses it, so the page (which does not offer it for this
    data) shows the TRL default under a line saying why, never a stale view or an error."""
    out = app.refresh(form(mode="assistant"))
    status = html.unescape(out["status"])
    assert "does not apply" in status and "not a chat" in status and "sv-error" not in status
    assert out["view-request"].options.mode == "auto" and "data-role=\"target\"" in out["token-view"]
    assert "assistant" not in [name for _, name in out["mode"]["choices"]] and "not a chat" in out["mode"]["info"]
    text = app.refresh(form(sample="quiz_text", mode="completion"))  # answer only on text: TRL trains it all
    assert text["view-request"].options.mode == "auto" and "no prompt/completion split" in html.unescape(
        text["status"])
    assert ("TRL default → whole text", "auto") in text["mode"]["choices"]
    trained = list(app.train_stream({"view-request": text["view-request"], "preset": "Quick demo (~10-30 s)",
                                     "train-modes": ["Whole text", "Answer only (completion_only_loss)"],
                                     "train-steps": 5, "train-lr": 0.001, "train-seed": 0, "train-model": "tiny",
                                     "train-weighted": False, "train-weight": 0.1}))
    assert "no prompt/answer split" in html.unescape(trained[-1]["train-status"])  # two identical runs: refused
    learner = app.refresh(form(sample="quiz_prompt_answer_text", mode="assistant"))  # TRL stops on it as it is
    assert learner["view-request"].options.mode == "auto" and "not a chat" in html.unescape(learner["status"])
    assert learner["mode"]["choices"][0] == ("TRL default (TRL stops on this file as it is)", "auto")


@pytest.mark.parametrize("fields,needle", [
    ({"source-tab": "hub", "hub-id": "a" * 1_000_000}, "is not a Hub dataset id"),
    ({"sample": None}, "choose a bundled sample"),
    ({"sample": 5}, "sample must be text"),
    ({"tokenizer": ["default"]}, "tokenizer must be text"),
    ({"tokenizer": "bad\ud800id"}, "is not a Hub tokenizer id"),
])
def test_page_messages_are_one_short_line_of_ours(app, fields, needle):
    out = app.refresh(form(**fields))
    assert len(html.unescape(out["status"])) < 400
    page_fails(app, out, needle)
    json.dumps(app.clean_out(out)).encode("utf-8")  # every text can be sent (no lone surrogate)


def test_library_messages_become_ours():
    from sftviz import one_line

    class PanicException(BaseException):  # tokenizers' (pyo3) panic type, by name
        pass

    assert one_line(PanicException("called `Result::unwrap()` on an `Err` value: ...")).startswith(
        "the tokenizer stopped on this data")
    assert one_line(TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[...]]")).startswith(
        "a value the tokenizer was given is not text")
    assert one_line(RecursionError("maximum recursion depth exceeded while decoding a JSON array")).startswith(
        "the data is nested too deeply")
    assert len(one_line(ValueError("x" * 10_000))) == 300


def test_a_lone_surrogate_is_replaced_when_read_and_the_page_says_so(app, files, tmp_path):
    bad = tmp_path / "surrogate.jsonl"
    bad.write_text('{"prompt": "2+2\\ud800?", "completion": " 4"}\n{"prompt": "3+3?", "completion": " 6"}\n')
    rows = data.load_trl(str(bad)).rows
    assert rows[0]["prompt"] == "2+2\ufffd?" and rows[1]["prompt"] == "3+3?"
    path, _ = uploaded(app, tmp_path, "surrogate.jsonl")
    out = app.refresh(form(**{"source-tab": "upload", "upload-path": path}))
    assert "sv-error" not in out["status"] and "1 row(s) hold text that is not valid" in html.unescape(out["status"])
    json.dumps(app.clean_out(out), default=str).encode("utf-8")


def test_csv_cells_up_to_the_upload_limit_load(tmp_path):
    big = tmp_path / "big_cell.csv"
    big.write_text('prompt,completion\n"' + "word " * 60_000 + '", yes\n')
    assert len(data.load_trl(str(big)).rows[0]["prompt"]) == 300_000


def test_handlers_with_nothing_to_do_still_answer(app):
    for out in (app.navigate({"view-request": None, "example-index": 0}, 1),
                app.find({"view-request": None, "example-index": 0, "search": "x"}),
                app.open_finding({"view-request": None, "doctor-open": None})):
        assert out == {"status": {"__type__": "update"}}


def test_one_row_and_cut_prompts_are_shown_not_refused(app, files):
    path, _ = uploaded(app, files, "one_row.jsonl")
    out = app.refresh(form(**{"source-tab": "upload", "upload-path": path}))
    assert "sv-error" not in out["status"] and out["count"] == "1 example"
    assert out["example-index"]["maximum"] >= 1  # a slider needs max > min; navigation clamps to row 0
    assert app.navigate({"view-request": out["view-request"], "example-index": 0}, 1)["example-index"] == 0
    cut = app.refresh(form(**{"max-length": 5}))  # every prompt is longer than max_length
    assert "TRL drops them" in html.unescape(cut["status"]) and "sv-dropped" in cut["token-view"]


@pytest.mark.parametrize("fields,needle", [
    ({"train-steps": 0}, "steps must be a whole number from 1 to 20,000"),
    ({"train-steps": 10 ** 9}, "steps must be at most 5,000 on this page"),
    ({"train-steps": None}, "steps is empty"),
    ({"train-lr": float("inf")}, "the learning rate must be"),
    ({"train-lr": -1}, "the learning rate must be"),
    ({"train-seed": 2 ** 70}, "seed must be a whole number from 0"),
    ({"train-modes": []}, "choose at least one mode to train"),
    ({"train-modes": ["TRL default for this data"]}, "mode 'auto' is not offered for training"),
    ({"train-model": "/etc"}, "is not a Hub model id"),
    ({"preset": "Turbo"}, "unknown preset 'Turbo'"),
    ({"train-weighted": True, "train-weight": 2}, "the prompt loss weight must be a number from 0 to 1"),
    ({"train-weighted": True, "train-weight": None}, "prompt weight is empty"),
])
def test_page_training_refuses_bad_settings_in_one_line(app, fields, needle):
    good = app.refresh(form())
    train_form = {"view-request": good["view-request"], "preset": "Quick demo (~10-30 s)",
                  "train-modes": ["Whole text", "Answer only (completion_only_loss)"], "train-steps": 5,
                  "train-lr": 0.001, "train-seed": 0, "train-model": "tiny", "train-weighted": False,
                  "train-weight": 0.1, **fields}
    updates = list(app.train_stream(train_form))
    assert len(updates) == 1 and needle in html.unescape(updates[0]["train-status"])
    ok = list(app.train_stream({**train_form, **{k: v for k, v in {
        "preset": "Quick demo (~10-30 s)", "train-modes": ["Whole text"], "train-steps": 3, "train-lr": 0.001,
        "train-seed": 0, "train-model": "tiny", "train-weighted": False}.items()}}))
    assert "Done in" in ok[-1]["train-status"] and ok[-1]["generations"]


def test_a_link_is_never_an_error(app):
    restored = app.from_url({"max_length": "9" * 20, "i": "9" * 20, "mode": "<script>", "packing": "nope",
                             "sample": "../../etc/passwd", "tokenizer": "t" * 5000})
    assert restored["max-length"] == 1024 and restored["example-index"]["value"] == 0
    assert restored["mode"] == "auto" and restored["sample"] == data.DEFAULT_SAMPLE
    assert restored["packing"] is False and len(restored["tokenizer"]) <= 200


# --- a few through the real browser -------------------------------------------------------------------

TEXT_JS = "() => (document.querySelector('#token-view .sv-tokens') || {}).innerText || ''"


def test_browser_twenty_digit_max_length_link_still_shows_the_page(page, server):
    page.goto(server.rstrip("/") + "/?sample=quiz_chat&max_length=" + "9" * 20 + "&i=" + "9" * 20, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=30000)
    assert page.locator("#max-length input").input_value() == "1024"
    assert page.locator("#status .sv-error").count() == 0


def test_browser_one_row_upload_then_bad_upload_keeps_the_working_view(page, server, files):
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=30000)
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(files / "good.jsonl"))
    page.wait_for_function(f"() => ({TEXT_JS})().includes('2+2?')", timeout=20000)
    page.locator("#upload button[aria-label*='Clear' i], #upload button[aria-label*='Remove' i]").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(files / "latin1.jsonl"))
    page.wait_for_function("() => document.querySelector('#status .sv-error') !== null", timeout=20000)
    assert "latin1.jsonl: line 1 is not UTF-8 text" in page.locator("#status").inner_text()
    page.locator("#next").click()  # the last good view still browses
    page.wait_for_function(f"() => ({TEXT_JS})().includes('3+3?')", timeout=20000)
    page.locator("#upload button[aria-label*='Clear' i], #upload button[aria-label*='Remove' i]").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(files / "one_row.jsonl"))
    page.wait_for_function(f"() => ({TEXT_JS})().includes('one?')", timeout=20000)
    assert page.locator("#status .sv-error").count() == 0 and "1 example" in page.locator("#count").inner_text()


def test_browser_hub_box_with_a_server_path_says_so_and_the_page_recovers(page, server):
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=30000)
    page.get_by_role("tab", name="Hub").click()
    box = page.locator("#hub-id textarea, #hub-id input").first
    box.fill("/etc")
    box.dispatch_event("change")  # (the page's own copy of the box's value is set before Load reads it)
    page.wait_for_timeout(300)
    page.locator("#hub-load").click()
    page.wait_for_function("() => document.querySelector('#status .sv-error') !== null", timeout=20000)
    assert "'/etc' is not a Hub dataset id" in page.locator("#status").inner_text()
    assert "root" not in page.evaluate(TEXT_JS)
    page.get_by_role("tab", name="Sample").click()
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_chat").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert page.locator("#status .sv-error").count() == 0


# --- The lesson's class (/?teach=sft, /?lesson=sft&class=CODE): forged codes, steps and joins -----------------

class _Clock:
    t = 1000.0

    def __call__(self):
        return self.t


def test_thousands_of_joins_from_one_client_fill_no_class():
    """A script joining thousands of times: with one session it is one student; with made-up sessions from one
    address, one-line refusals after NEW_STUDENTS_PER_MINUTE. The class's real students are all still in it."""
    from sftviz import classroom
    classes = classroom.Classes(_Clock())
    code = classes.open("teacher").code
    for k in range(25):
        classes.join(code, f"student{k}", address="10.0.0.1")  # a school's students behind one address
    for _ in range(2000):
        classes.join(code, "script", address="6.6.6.6")
    assert len(classes.classes[code].students) == 26
    refused = 0
    for k in range(2000):
        try:
            classes.join(code, f"fake{k}", address="6.6.6.6")
        except classroom.Refused as e:
            refused += 1
            assert "too many new students from one address" in str(e)
    assert refused == 2000 - classroom.NEW_STUDENTS_PER_MINUTE + 1  # (the one session above was its first)
    assert classes.summary(code, "teacher", 8)["students"] == 25 + classroom.NEW_STUDENTS_PER_MINUTE
    assert all(f"student{k}" in classes.classes[code].students for k in range(25))


@pytest.mark.parametrize("query,needle", [
    ({"lesson": "sft", "class": "NOPE"}, "a class code is 8 letters"),
    ({"lesson": "sft", "class": "ABCDEFGH"}, "no class has this code"),
    ({"lesson": "sft", "class": "A" * 10_000}, "a class code is 8 letters"),
    ({"lesson": "sft", "class": "<script>x</script>"}, "a class code is 8 letters"),
])
def test_a_wrong_class_code_gets_one_line_and_the_whole_lesson(query, needle, monkeypatch):
    from sftviz import classroom, lesson_page
    monkeypatch.setattr(classroom, "CLASSES", classroom.Classes())
    out = as_visitor("someone", lesson_page.lesson_open, query)
    said = html.unescape(out["lesson-feedback"])
    assert needle in said and "sv-error" in said and len(said) < 300 and "<script>" not in out["lesson-feedback"]
    assert out["lesson-class"] is None and out["lesson-index"] == 0 and "sv-pick" in out["lesson-tokens"]


@pytest.mark.parametrize("form,needle", [
    ({"class-state": None, "class-step": "2. Whole text or only the answer?"}, "a class code is 8 letters"),
    ({"class-state": "ABCDEFGH", "class-step": "2."}, "this class has ended"),
    ({"class-step": "99. Nothing"}, "the lesson has steps 1 to"),
    ({"class-step": "-1"}, "the lesson has steps 1 to"),
    ({"class-step": ["1"]}, "the lesson has steps 1 to"),
    ({"class-step": "1" * 10_000}, "the lesson has steps 1 to"),
])
def test_a_forged_move_gets_one_line_and_the_class_stays(form, needle, monkeypatch):
    from sftviz import classroom, lesson_page
    classes = classroom.Classes()
    monkeypatch.setattr(classroom, "CLASSES", classes)
    code = as_visitor("teacher", lesson_page.teach_open)["class-state"]
    classes.join(code, "student")
    out = as_visitor("teacher", lesson_page.teach_move, {"class-state": code, **form})
    said = html.unescape(out["class-status"])
    assert list(out) == ["class-status"] and needle in said and len(said) < 300
    assert classes.where(code, "student") == (0, 0)  # nothing moved
