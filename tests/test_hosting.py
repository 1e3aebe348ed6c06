"""Hosted means untrusted: in the default configuration the page (and its API) reaches only bundled
samples, the visitor's own uploads and Hub ids; a runaway template is stopped within its budget while
other visitors are served; uploads are private to their session and deleted with it."""

import html
import os
import shutil
import threading
import time

import pytest

from conftest import ROOT, page_form, shared_path
from sftviz import bounded, data, uploads, view

SAMPLE = os.path.join(ROOT, "assets", "samples", "quiz_question_answer.jsonl")


@pytest.fixture
def app(hosted_app):
    return hosted_app


def form(**kw):
    return page_form(**kw)


def status(out):
    return html.unescape(out.get("status", ""))


def everything(out):
    return html.unescape(" ".join(str(v) for v in out.values()))


def upload(app, path, session, shown=None):
    """What the page does with an upload: a copy (Gradio's temp file) moved into the session's folder (`shown`:
    the view the page shows)."""
    tmp = os.path.join(os.path.dirname(uploads.ROOT), f"gradio-{session}-{os.path.basename(path)}")
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    shutil.copy(path, tmp)
    out = app.receive_upload(tmp, session, shown)
    assert "status" not in out, out
    return out["upload-path"]


def test_the_hub_box_and_data_links_cannot_read_server_paths(app, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "notes.txt").write_text("the staff room code is 4711\n")
    (secret / "rows.jsonl").write_text('{"text": "the staff room code is 4711"}\n')
    messages = {}
    for hub_id in ["/etc/passwd", "/etc", str(secret), str(secret / "rows.jsonl"), "..", "~", "~/.cache",
                   "./assets", "../shared", "assets/samples", "/", "a/../../etc", "tests", "sftviz", "assets",
                   "no-such-folder-here", "someone/nothing-here"]:
        out = app.refresh(form(**{"source-tab": "hub", "hub-id": hub_id}))
        assert "sv-error" in out["status"] and "4711" not in everything(out), hub_id
        assert "view-request" not in out  # nothing was loaded
        messages[hub_id] = status(out).replace(repr(hub_id), "NAME")
    # a name that is a folder here answers exactly as a name that is nothing: no way to probe the disk
    assert messages["tests"] == messages["sftviz"] == messages["assets"] == messages["no-such-folder-here"] \
        == messages["someone/nothing-here"]
    assert messages["/etc"] == messages["/etc/passwd"] == messages[str(secret)] == messages["/"]
    # a shared link carries its data= into the Hub box, with the same rules
    restored = app.from_url({"data": str(secret / "rows.jsonl")})
    assert restored["source-tab"] == "hub"
    out = app.refresh(form(**{"source-tab": "hub", "hub-id": restored["hub-id"]}))
    assert "sv-error" in out["status"] and "4711" not in everything(out)
    # a page opened on such a link shows the default view under the link's message, not an empty page
    opened = app.first_view({"data": str(secret / "rows.jsonl"), "i": "9" * 20})
    assert "is not a Hub dataset id" in status(opened) and "4711" not in everything(opened)
    assert opened["view-request"] == app.first_view({})["view-request"] and opened["count"] == "400 examples"
    # the sample box takes bundled names only (the API can send anything)
    out = app.refresh(form(sample="../../../etc/passwd"))
    assert "is not a bundled sample" in status(out)


def test_tokenizer_and_model_fields_cannot_load_server_folders(app):
    gpt2 = shared_path("assets", "tokenizers", "gpt2")
    for name in (gpt2, "../shared/assets/tokenizers/gpt2", "~/.cache", "/"):
        out = app.refresh(form(tokenizer=name))
        assert "is not a Hub tokenizer id" in status(out), name
    assert status(app.refresh(form(tokenizer="assets"))) == \
        status(app.refresh(form(tokenizer="zzz-nothing"))).replace("zzz-nothing", "assets")
    good = app.refresh(form())
    for name, needle in ((gpt2, "is not a Hub model id"), ("/tmp", "is not a Hub model id"),
                         ("assets", "cannot load model 'assets' from the Hub")):
        train_form = {"view-request": good["view-request"], "preset": "Quick demo (~10-30 s)",
                      "train-modes": ["Whole text"], "train-steps": 5, "train-lr": 0.001, "train-seed": 0,
                      "train-model": name, "train-weighted": False, "train-weight": 0.1}
        updates = list(app.train_stream(train_form))
        assert len(updates) == 1 and needle in html.unescape(updates[0]["train-status"]), name


def test_an_operator_can_opt_in_to_local_paths_and_model_size_is_checked_first(app, monkeypatch, tmp_path):
    from transformers import LlamaConfig

    from sftviz import train
    monkeypatch.setattr(app, "LOCAL_PATHS", True)
    gsm = shared_path("assets", "data", "gsm8k_test.jsonl")
    out = app.refresh(form(**{"source-tab": "hub", "hub-id": gsm},
                           tokenizer=shared_path("assets", "tokenizers", "gpt2")))
    assert "sv-error" not in out["status"] and out["view-request"].where == "any"
    # a model's size comes from its config alone, before any weights exist
    big = tmp_path / "big"
    LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4).save_pretrained(big)
    with pytest.raises(train.TrainError, match=r"has 1,100M parameters; this page trains models of at most 150M"):
        train.check_model(str(big), "any", train.MAX_MODEL_PARAMS)
    small = tmp_path / "small"
    LlamaConfig(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2).save_pretrained(small)
    assert train.check_model(str(small), "any", train.MAX_MODEL_PARAMS) == str(small)


def test_uploads_are_private_to_their_session_and_deleted_with_it(app):
    import datasets
    cache = datasets.config.HF_DATASETS_CACHE
    before = set(os.listdir(cache)) if os.path.isdir(cache) else set()
    a_path = upload(app, SAMPLE, "sessionA")
    assert uploads.owned_by(a_path, "sessionA") and not uploads.owned_by(a_path, "sessionB")
    assert oct(os.stat(a_path).st_mode & 0o777) == "0o600"
    a = app.refresh(form(**{"source-tab": "upload", "upload-path": a_path}))
    assert "quiz_question_answer.jsonl" in status(a) and a["view-request"].where == "file"
    # session B has no upload of its own, and cannot name A's: not by the Hub box, not by the sample box
    assert "no file uploaded in this session yet" in status(app.refresh(form(**{"source-tab": "upload"})))
    for f in (form(**{"source-tab": "hub", "hub-id": a_path}), form(sample=a_path)):
        out = app.refresh(f)
        assert "sv-error" in out["status"] and "capital" not in everything(out).lower()
    # nothing went into the shared datasets cache
    after = set(os.listdir(cache)) if os.path.isdir(cache) else set()
    assert after == before
    # A leaves: the file and everything cached from it are gone
    assert any(k[0].name == a_path for k in view._loads.data)  # keys: the data_key, or (data_key, ...)
    assert any(k[0][0].name == a_path for k in view._preps.data)
    assert any(k[0][0].name == a_path for k in view._stats.data)
    app.end_session("sessionA")
    assert not os.path.exists(a_path)
    assert not any(k[0].name == a_path for k in view._loads.data)
    assert not any(k[0][0].name == a_path for cache in (view._preps, view._stats) for k in cache.data)
    # and a late request on A's old view says so instead of failing silently
    out = app.navigate({"view-request": a["view-request"], "example-index": 0}, 1)
    assert "the uploaded file is gone" in status(out)


def test_uploads_are_size_limited_and_swept_after_their_time(app, monkeypatch, tmp_path):
    from app import LAUNCH  # (built with the real limit, before it is lowered here)
    monkeypatch.setattr(uploads, "MAX_MB", 1)
    big = tmp_path / "big.jsonl"
    big.write_text('{"text": "' + "x" * (2 * 2**20) + '"}\n')
    out = app.receive_upload(str(big), "sessionC")
    assert "big.jsonl is larger than 1 MB" in status(out) and not big.exists()
    # Gradio itself refuses bigger uploads before any handler runs
    assert LAUNCH["max_file_size"] == f"{int(os.environ.get('SFTVIZ_MAX_UPLOAD_MB', 50))}mb"
    kept = upload(app, SAMPLE, "sessionD")
    uploads.sweep(now=time.time() + uploads.KEEP_S + 1)
    assert not os.path.exists(kept)


def test_a_session_keeps_one_upload_and_the_folder_has_a_total_cap(app, monkeypatch):
    paths = [upload(app, SAMPLE, "sessionF") for _ in range(5)]
    out = app.refresh(form(**{"source-tab": "upload", "upload-path": paths[-1]}))
    assert "sv-error" not in out["status"]
    assert [os.path.exists(p) for p in paths] == [False] * 4 + [True]  # each upload replaced the one before
    assert uploads.previous("sessionF") == [paths[-1]]
    # the upload the page shows stays beside a newer one (a bad new file keeps the last good view browsing) ...
    shown = out["view-request"]
    newer = upload(app, SAMPLE, "sessionF", shown)
    assert sorted(uploads.previous("sessionF")) == sorted([paths[-1], newer])
    browsed = app.navigate({"view-request": shown, "example-index": 0}, 1)
    assert "sv-error" not in browsed.get("status", "") and "data-role" in browsed["token-view"]
    before = len(view._loads.data)
    upload(app, SAMPLE, "sessionF")  # ... until another upload comes: then it goes, and what was cached from it
    assert len(view._loads.data) == before - 1 and len(uploads.previous("sessionF")) == 1
    # an upload's age is the time it arrived, whatever touches its folder later
    old = upload(app, SAMPLE, "sessionG")
    os.utime(old, (time.time() - uploads.KEEP_S - 10,) * 2)
    os.utime(os.path.dirname(os.path.dirname(old)))  # the session folder looks fresh
    uploads.sweep()
    assert not os.path.exists(old) and uploads.previous("sessionG") == []
    # every session's uploads together stay under the server's cap
    monkeypatch.setattr(uploads, "TOTAL_MB", 0)
    path = os.path.join(os.path.dirname(uploads.ROOT), "incoming.jsonl")
    shutil.copy(SAMPLE, path)
    assert "space for uploads is full" in status(app.receive_upload(path, "sessionH"))
    assert not os.path.exists(path) and uploads.previous("sessionH") == []


def child_pids():
    me = str(os.getpid())
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[1] == me and fields[0] != "Z":
                    pids.append(int(entry))
            except OSError:
                pass
    return set(pids)


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def clicking_next_while(app, other, work):
    """Run work() in a thread while another student keeps clicking Next on their view `other` (each answered
    without an error); the seconds each click took."""
    thread = threading.Thread(target=work)
    thread.start()
    served = []
    while thread.is_alive():
        t = time.perf_counter()
        out = app.navigate({"view-request": other["view-request"], "example-index": len(served) % 50}, 1)
        served.append(time.perf_counter() - t)
        assert "sv-error" not in out.get("status", "")
        time.sleep(0.05)
    thread.join()
    return served


@pytest.mark.parametrize("template,needle", [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "took longer than 3 s"),
    ("{% set s = 'x' * 100000000 %}{{ s * 40 }}", "used more than 1024 MB of memory"),
])
def test_a_runaway_template_is_stopped_while_other_visitors_are_served(app, monkeypatch, template, needle):
    other = app.refresh(form(sample="quiz_chat"))  # another student's view, loaded (and the imports done)
    monkeypatch.setattr(bounded, "SECONDS", 3)
    monkeypatch.setattr(bounded, "MEMORY_MB", 1024)
    children, rss = child_pids(), rss_mb()
    path = upload(app, SAMPLE, "sessionE")
    result = {}

    def hostile():
        t = time.perf_counter()
        result["out"] = app.refresh(form(**{"source-tab": "upload", "upload-path": path,
                                            "prompt-template": template}))
        result["seconds"] = time.perf_counter() - t

    served = clicking_next_while(app, other, hostile)
    assert needle in status(result["out"]) and result["seconds"] < 10
    assert len(served) > 5 and max(served) < 1.0
    # the work really stopped: no child left, CPU idle, memory back
    assert child_pids() == children
    cpu = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - cpu < 0.2
    assert rss_mb() - rss < 100
    # and the same visitor's next normal request works
    assert "sv-error" not in app.refresh(form(**{"source-tab": "upload", "upload-path": path}))["status"]


def test_hub_datasets_are_streamed_with_a_row_and_byte_limit(monkeypatch, tmp_path):
    (tmp_path / "train.jsonl").write_text("".join(f'{{"text": "row {i} {"y" * 100}"}}\n' for i in range(50)))
    assert len(data.load(str(tmp_path), limit=7)) == 7  # a dataset folder: read as a Hub id is
    monkeypatch.setattr(data, "MAX_HUB_BYTES", 1000)
    assert len(data.load(str(tmp_path))) < 10
    assert len(list(data.iter_chunks(str(tmp_path)))[0].rows) == 50  # the doctor's pass reads every row


def test_caches_are_bounded_in_bytes():
    cache = view._LRU(1000)
    for k in range(10):
        cache.get(k, lambda: (f"value {k}", 300))
    assert cache.total() <= 1000 and list(cache.data) == [7, 8, 9]
    cache.grow(9, 500)
    assert list(cache.data) == [9]


def test_gradio_does_not_serve_private_uploads_or_server_files(server):
    import urllib.error
    import urllib.request

    from sftviz import page as app
    path = upload(app, SAMPLE, "sessionF")
    for target in (path, "/etc/passwd", os.path.join(ROOT, "app.py")):
        url = f"{server.rstrip('/')}/gradio_api/file={target}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        assert e.value.code in (403, 404), target
    for target in ("monitoring", "monitoring/summary"):  # Gradio's traffic dashboard (on by default) is off
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.rstrip('/')}/{target}", timeout=10)
        assert e.value.code == 403, target
    # and the API exposes no way to set the session's upload or view
    from gradio_client import Client
    names = {p["parameter_name"] for ep in Client(server, verbose=False).view_api(
        return_format="dict", print_info=False)["named_endpoints"].values() for p in ep["parameters"]}
    assert not names & {"upload_path", "view_request", "source_tab"}
    app.end_session("sessionF")
    assert not os.path.exists(path)


def test_a_training_stops_at_the_pages_time_budget():
    from sftviz import live, train
    from sftviz.labels import Options
    v = view.open_view(view.ViewRequest("quiz_prompt_completion", options=Options("completion")))
    cfg = train.TrainConfig.preset("quick", steps=20000, n_generate=1)
    t = time.perf_counter()
    updates = list(live.train_updates(v, cfg, budget_s=2))
    assert time.perf_counter() - t < 30
    status = updates[-1][1]
    assert "Stopped at the page's time budget of 2 s" in status and "of 20000 steps" in status
    assert updates[-1][2]  # the generations of what was trained so far
    assert not [t for t in threading.enumerate() if t.name.startswith("sftviz-train")]


def peak_rss_mb():
    """The server's peak RSS since reset_peak_rss() (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@pytest.mark.parametrize("max_length", [None, 200_000])
def test_a_huge_row_is_shown_as_a_window_and_the_server_stays_small(app, tmp_path, max_length):
    """One uploaded row of 3.4 MB text: the labelling runs in the bounded child, and only a window of
    VIEW_TOKENS tokens per example comes back to the server; another visitor's Next stays fast meanwhile."""
    big = tmp_path / "one_big_row.jsonl"
    big.write_text('{"text": "' + "the cat sat on the mat " * 150_000 + '"}\n')
    other = app.refresh(form(sample="quiz_chat"))
    path = upload(app, str(big), "sessionBig")
    import gc
    gc.collect()
    rss = rss_mb()
    reset_peak_rss()
    result = {}

    def hostile():
        result["out"] = app.refresh(form(**{"source-tab": "upload", "upload-path": path, "mode": "whole",
                                            "max-length": max_length}))

    served = clicking_next_while(app, other, hostile)
    out = result["out"]
    assert "sv-error" not in out["status"], status(out)
    shown = view.VIEW_TOKENS
    import re
    total = int(re.search(rf"the last {shown:,} of ([\d,]+) tokens", out["token-view"]).group(1).replace(",", ""))
    assert total > 1_000_000 if max_length is None else total == max_length
    assert out["token-view"].count(' data-pos="') == shown
    assert f'data-pos="{total - 1}"' in out["token-view"] and f'data-pos="{total - shown}"' in out["token-view"]
    assert len(everything(out)) < 3_000_000
    assert peak_rss_mb() - rss < 200, (peak_rss_mb(), rss)
    assert served and max(served) < 1.0
    # browsing the huge example stays small too
    nav = app.navigate({"view-request": out["view-request"], "example-index": 0}, 0)
    assert len(everything(nav)) < 3_000_000


def test_a_bounded_result_over_its_byte_cap_is_never_read_whole(monkeypatch):
    monkeypatch.setattr(bounded, "RESULT_MB", 8)
    children, rss = child_pids(), rss_mb()
    reset_peak_rss()
    with pytest.raises(bounded.BudgetExceeded, match="a result of more than 8 MB"):
        bounded.run(lambda: "x" * (64 * 2**20), what="loading big.jsonl")
    assert peak_rss_mb() - rss < 48  # the 64 MB were never read in
    assert bounded.run(lambda: "x" * 2**20)[0] == "x" * 2**20  # under the cap: as before
    assert child_pids() <= children
    too_long = page_form(**{"max-length": 300_000})
    from sftviz import page
    assert "at most 262,144 tokens on this page" in status(page.refresh(too_long))


def test_the_caches_count_the_memory_they_hold_within_2x(app, tmp_path, monkeypatch):
    """SFTVIZ_CACHE_MB is memory held: a 5,000-row upload's rows and labels, measured as the growth of the
    server's RSS, against what the caches counted for them."""
    import gc
    # memory, not time: each of the refresh's four labellings of these long rows takes ~6 s here, and a full
    # suite's leftover work once pushed one past the 10 s budget
    monkeypatch.setattr(bounded, "SECONDS", 60)
    rows = tmp_path / "many.jsonl"
    with open(rows, "w") as f:
        for i in range(5000):
            f.write(f'{{"prompt": "Question {i}: {"what is the capital of a country " * 20}?", '
                    f'"completion": " Answer {i}: {"the capital is a city " * 20}."}}\n')
    path = upload(app, str(rows), "sessionMem")
    gc.collect()
    rss, counted = rss_mb(), view._loads.total() + view._preps.total()
    out = app.refresh(form(**{"source-tab": "upload", "upload-path": path, "mode": "whole"}))
    assert "sv-error" not in out["status"]
    gc.collect()
    grown = rss_mb() - rss
    counted = (view._loads.total() + view._preps.total() - counted) / 2**20
    print(f"memory held: counted {counted:.0f} MB, RSS grew {grown:.0f} MB")
    assert grown > 20 and 0.5 < counted / grown < 2, (counted, grown)


STUDENT_VIEW = dict(sample="quiz_prompt_completion", hub_id="", columns="As TRL reads your file", text_field="text",
                    tokenizer="default", prompt_template="", completion_template="", max_length=1024, packing=False,
                    packing_strategy="bfd", example_index=0)
QUICK = dict(preset="Quick demo (~10-30 s)", train_modes=["Whole text", "Answer only (completion_only_loss)"],
             train_lr=0.001, train_model="tiny", train_weighted=False, train_weight=0.1)


def test_outputs_a_handler_leaves_out_are_sent_as_gradio_sends_them_and_nothing_is_rebuilt():
    """app.skip_untouched: what reaches the page is what Gradio's own postprocess sends (a refusal, a Replaced,
    a full first view with its States), but an output the handler left out is not rebuilt for the session."""
    import asyncio
    import concurrent.futures
    import copy
    import types

    from gradio.state_holder import SessionState

    import app
    from sftviz import page
    gradios = types.MethodType(type(app.demo).postprocess_data, app.demo)  # (app.start has replaced the demo's)
    fast = types.SimpleNamespace(postprocess_data=gradios)
    app.skip_untouched(fast)
    def run(coroutine):  # in a thread of its own: the browser tests' Playwright keeps an event loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, coroutine).result()

    fn = next(f for f in app.demo.fns.values() if f.api_name == "first_view")
    by_id = {b.elem_id: b for b in fn.outputs if not b.stateful}
    kept = [b for b in fn.outputs if b.stateful]
    full = {by_id[k]: v for k, v in page.clean_out(page.first_view({})).items() if k in by_id}
    cases = {"refusal": {by_id["status"]: "<p>refused</p>"}, "replaced": {by_id["status"]: app.SKIP},
             "first view": {**full, **{b: {"kept": k} for k, b in enumerate(kept)}},
             "one output and a State": {by_id["count"]: "3 examples", kept[0]: [1, 2]}}
    for name, returned in cases.items():
        gradio_state, fast_state = SessionState(app.demo), SessionState(app.demo)
        before = dict(fast_state.blocks_config.blocks)
        def fresh():  # (Gradio pops an update's value: each call gets its own copy)
            return {b: copy.deepcopy(v) for b, v in returned.items()}
        sent = run(gradios(fn, fresh(), gradio_state))
        assert run(fast.postprocess_data(fn, fresh(), fast_state)) == sent, name
        for b in fn.outputs:
            if b.stateful:
                assert fast_state.state_data.get(b._id) == gradio_state.state_data.get(b._id), name
            elif returned.get(b, app.SKIP) == app.SKIP:  # left out: Gradio rebuilt it; here it is untouched
                assert gradio_state.blocks_config.blocks[b._id] is not before[b._id], name
                assert fast_state.blocks_config.blocks[b._id] is before[b._id], name
    assert sum(v == app.SKIP for v in sent) >= 2 and sum(v is None for v in sent) == len(kept)  # (a State: None)
    stranger = next(b for f in app.demo.fns.values() for b in f.outputs if b not in fn.outputs)
    for post in (gradios, fast.postprocess_data):  # a component that is not an output: Gradio's own error
        with pytest.raises(ValueError, match="not specified as output"):
            run(post(fn, {stranger: app.SKIP, by_id["status"]: "x"}, SessionState(app.demo)))


def test_one_visitor_flooding_the_page_does_not_slow_another(server):
    """A hostile visitor (a script, one session) floods first views of new links, refreshes with slow templates,
    Train presses and uploads, each bounded in count and time. Another visitor's page open and mode switch stay
    within 2x of idle, their Train within 2x of its fair share (its time while one classmate trains too), plus
    0.5 s of a loaded machine's jitter, and nobody gets HTTP 503; the flood
    gets one-line refusals. (The 0.5 s: the first click after the flood starts can meet a burst of forks.) The
    median click is held to 2x and the slowest to 3x: the fair-share baseline is a median of three runs, and one
    slow click against a fast baseline failed a full CI run at 2.5x while the median was 2.0x."""
    import statistics

    from gradio_client import Client

    from sftviz import jobs

    student = Client(server, verbose=False)
    seeds = iter(range(1000, 2000))

    def page_open():
        student.predict(api_name="/first_view_cached")

    def mode_switch(mode=[0]):
        mode[0] += 1
        student.predict(mode=["whole", "completion"][mode[0] % 2], **STUDENT_VIEW,
                        api_name="/refresh")

    def train():
        job = student.submit(**QUICK, train_steps=20, train_seed=next(seeds), api_name="/train_stream")
        end = time.time() + 60
        while not job.done() and time.time() < end:
            time.sleep(0.1)
        if not job.done():  # a stuck run says what every job was doing
            import subprocess
            info = [(j.key[:2], j.owner, j.state, j.pid, len(j.updates)) for j in jobs.POOL.active]
            pids = [str(j.pid) for j in jobs.POOL.active if j.pid]
            ps = subprocess.run(["ps", "-o", "pid,ni,stat,wchan:30,pcpu,etime,cmd", "-p", ",".join(pids) or "1"],
                                capture_output=True, text=True).stdout
            raise AssertionError(f"stuck: {info} line={[(j.key[:2], j.owner) for j in jobs.POOL.line]}\n{ps}")
        out = job.outputs()[-1]
        assert "Done in" in str(out), out

    def timed(action):
        t = time.perf_counter()
        action()
        return time.perf_counter() - t

    actions = {"page open": page_open, "mode switch": mode_switch, "Train": train}
    for action in actions.values():  # warm: the view and its stats are cached, torch is imported
        action()
    idle = {name: statistics.median(timed(a) for _ in range(3)) for name, a in actions.items()}
    # A Train's fair share: one classmate training too (one job per visitor, one worker per core), so the
    # student's run gets half the cores. The flooder, one visitor, may take that share and no more.
    classmate = Client(server, verbose=False)
    long_run = classmate.submit(**QUICK, train_steps=5000, train_seed=1, api_name="/train_stream")
    end = time.time() + 30
    while jobs.POOL.running < 1 and time.time() < end:
        time.sleep(0.1)
    shared = statistics.median(timed(train) for _ in range(3))
    long_run.cancel()
    end = time.time() + 30
    while jobs.POOL.busy() != (0, 0) and time.time() < end:
        time.sleep(0.2)
    assert jobs.POOL.busy() == (0, 0)  # the classmate's Stop freed the worker
    baseline = {**idle, "Train": shared}

    # --- the flood: benchmarks/load_classroom.py's hostile visitor, a script in a process of its own posting to
    # the queue every 0.2 s a new link, a 10-second template, a Train press and an upload -----------------
    import json
    import subprocess
    import sys
    code = ("import json, sys, time; sys.path.insert(0, 'benchmarks'); from load_classroom import hostile; "
            f"print(json.dumps(sorted(hostile({server!r}, time.time() + 35).items())))")
    flood = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    time.sleep(4)  # the flood is on
    loaded = {name: [] for name in actions}
    while flood.poll() is None:
        for name, action in actions.items():
            loaded[name].append(timed(action))
    answers = {tuple(k): n for k, n in json.loads(flood.communicate(timeout=60)[0])}
    print({name: (round(baseline[name], 2), [round(t, 2) for t in ts]) for name, ts in loaded.items()},
          "idle Train", round(idle["Train"], 2), answers)
    for name, ts in loaded.items():  # the typical click within 2x, and no click starved (3x: one slow fork burst)
        assert ts and statistics.median(ts) < 2 * baseline[name] + 0.5, (name, baseline[name], ts)
        assert max(ts) < 3 * baseline[name] + 0.5, (name, baseline[name], ts)
    assert sum(answers.values()) > 100 and all(code in (200, 400) for _, code in answers)  # never a 503
    import app  # Gradio's queue never summarized its events (pandas, after each event: app.py turns it off)
    assert app.demo._queue.events_recorded > 100 and app.demo._queue.cached_event_analytics_summary == {"functions": {}}
    # what the flood's loads and presses got: one-line refusals past 2 a second, before any work
    from sftviz import page
    with page.visitor("flooder"):
        said = [html.unescape(page.refresh(form(mode=mode))["status"]) for mode in ["whole", "completion"] * 6]
    refused = [s for s in said if "too many requests from this page" in s]
    assert len(refused) >= 4 and all(len(s) < 300 for s in refused)
    # the hostile visitor held one worker at most (its Train presses replaced each other; one job per visitor).
    # A script that never listens is never seen to leave: its last run goes on to its budget, so stop it here
    running = [j for j in jobs.POOL.active if j.owner is not None]
    assert len({j.owner for j in running}) <= 1 and len(running) <= 1, [(j.key[:2], j.owner) for j in running]
    for j in running:
        if j.pid:
            assert os.getpriority(os.PRIO_PROCESS, j.pid) == 19  # the flooder's job went below everyone else's
            os.kill(j.pid, 9)
    end = time.time() + 30
    while jobs.POOL.busy() != (0, 0) and time.time() < end:
        time.sleep(0.5)
    assert jobs.POOL.busy() == (0, 0)


def test_a_small_file_that_unpacks_to_half_a_gigabyte_is_refused_in_one_line(app, tmp_path):
    """A zstd Parquet of ~100 KB holding 5,000 rows of 100 KB each: the load child's result is over
    RESULT_MB, so the server never reads it; the visitor gets one line of ours."""
    import gc

    import pyarrow as pa
    import pyarrow.parquet as pq
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": ["the cat sat on the mat " * 4500] * 5000}), bomb, compression="zstd")
    assert os.path.getsize(bomb) < 1_000_000
    path = upload(app, str(bomb), "sessionZ")
    gc.collect()
    rss = rss_mb()
    reset_peak_rss()
    out = app.refresh(form(**{"source-tab": "upload", "upload-path": path}))
    assert "more than 256 MB, more than this page keeps" in status(out) and len(status(out)) < 400
    assert "panic" not in status(out).lower()
    assert peak_rss_mb() - rss < 100
    assert "sv-error" not in app.refresh(form())["status"]  # the next visitor's load works
