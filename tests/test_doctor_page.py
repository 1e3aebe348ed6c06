"""The doctor on the page: every row checked in a shared background pass (progress, then the findings of
all rows), browsing still instant meanwhile, and a finding's example buttons that open it marked."""

import html
import json
import re
import shutil
import time

import pytest

from conftest import page_form
from sftviz import jobs, uploads, view


@pytest.fixture
def app(hosted_app, monkeypatch):
    monkeypatch.setattr(view, "MAX_ROWS", 40)  # the page holds the first 40 rows of a bigger file
    monkeypatch.setattr(view, "FULL_CHUNK", 25)  # the full pass reports every 25 rows
    monkeypatch.setattr(jobs, "POOL", jobs.Pool(1))
    return hosted_app


def big_upload(app, tmp_path, session, rows=200, long_from=120):
    """A file whose answers are short in the first rows and cut by max_length 40 from row `long_from` on."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(rows):
            answer = " yes" if i < long_from else " " + " ".join(["long answer"] * 30)
            f.write(json.dumps({"prompt": f"Question {i}: ok?\nAnswer:", "completion": answer}) + "\n")
    tmp = tmp_path / f"gradio-{session}.jsonl"
    shutil.copy(path, tmp)
    return app.receive_upload(str(tmp), session)["upload-path"]


def test_every_row_is_checked_in_the_background_while_browsing_stays_instant(app, tmp_path):
    form = page_form(**{"source-tab": "upload", "upload-path": big_upload(app, tmp_path, "s1"), "max-length": 40})
    out = app.refresh(form)
    first = html.unescape(out["doctor-report"])
    assert "Answers cut" not in first  # the first 40 rows have short answers
    assert "every row is being checked in the background" in first
    request = out["view-request"]
    updates = app.full_doctor({"view-request": request})
    progress = [next(updates)["doctor-progress"]]
    started = time.perf_counter()  # the pass runs in its own process: the page answers meanwhile
    nav = app.navigate({"view-request": request, "example-index": 3}, 1)
    assert nav["example-index"] == 4 and time.perf_counter() - started < 1.0
    rest = list(updates)
    progress += [u["doctor-progress"] for u in rest[:-1]]
    assert "<progress" in progress[0] and "of ~200 rows" in progress[-1]
    counts = [int(m.group(1)) for p in progress for m in [re.search(r"([\d,]+) of ~200", p)] if m]
    assert counts == sorted(counts) and counts[-1] == 200
    final = html.unescape(rest[-1]["doctor-report"])
    assert "Answers cut by max_length 40" in final and "80 of 200" in final and "Every row of" in final
    # its examples lie past the rows the page holds: named, not openable
    assert 'disabled title="past the first 40 rows' in final
    # the dataset statistics now cover every row too
    assert "**200** examples (every row)" in rest[-1]["stats"] and "80 longer than max_length" in rest[-1]["stats"]
    assert sum(rest[-1]["length-plot"].data[0].y) == 200
    assert "the first 40 rows" in out["stats"]


def test_a_second_visitor_joins_the_same_pass_and_a_finished_pass_is_kept(app, tmp_path):
    source = big_upload(app, tmp_path, "s2")
    request = app.refresh(page_form(**{"source-tab": "upload", "upload-path": source, "max-length": 40}))["view-request"]
    a = app.full_doctor({"view-request": request})
    next(a)
    b = list(app.full_doctor({"view-request": request}))  # joins: sees the same end
    assert "Answers cut" in html.unescape(b[-1]["doctor-report"])
    assert any("shared with 1 other visitor" in u.get("doctor-progress", "") for u in b)
    rest = list(a)
    assert rest[-1]["doctor-report"] == b[-1]["doctor-report"]
    again = list(app.full_doctor({"view-request": request}))  # finished: at once, no new pass
    assert again[-1]["doctor-report"] == b[-1]["doctor-report"] and jobs.POOL.computed == 1


def test_an_older_view_never_overwrites_a_newer_one_and_small_data_needs_no_pass(app, tmp_path, monkeypatch):
    source = big_upload(app, tmp_path, "s3")
    request = app.refresh(page_form(**{"source-tab": "upload", "upload-path": source, "max-length": 40}))["view-request"]
    newer = []
    updates = list(app.full_doctor({"view-request": request}, current=lambda: not newer))
    assert updates  # the pass for the current view reports
    newer.append(1)
    stale = list(app.full_doctor({"view-request": request}, current=lambda: not newer))
    assert stale == []  # the visitor moved on: nothing written
    monkeypatch.setattr(view, "MAX_ROWS", 5000)
    small = app.refresh(page_form())["view-request"]  # a bundled sample: the page holds every row
    assert list(app.full_doctor({"view-request": small})) == []


def test_a_finding_example_button_opens_it_with_its_tokens_marked_and_bad_values_are_refused(app):
    out = app.refresh(page_form(**{"max-length": 40}))
    report = html.unescape(out["doctor-report"])
    value = re.search(r'data-check="answers_cut".*?data-open="([\d:,]+)"', report, re.S).group(1)
    index, position = value.split(":")
    opened = app.open_finding({"view-request": out["view-request"], "doctor-open": value})
    assert opened["example-index"] == int(index)
    assert re.search(rf'class="sv-tok[^"]*sv-changed[^"]*"[^>]*data-pos="{position}"', opened["token-view"]) or \
        f'data-pos="{position}"' in opened["token-view"] and "sv-changed" in opened["token-view"]
    for bad in ("../etc", "1:2:3", "9" * 12 + ":1", {"x": 1}, "1:" + ",".join(["1"] * 100)):
        refused = app.open_finding({"view-request": out["view-request"], "doctor-open": bad})
        assert "not an example of a finding" in html.unescape(refused["status"])
