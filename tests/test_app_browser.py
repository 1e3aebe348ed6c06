"""The web app in headless Chromium (Debian's), against an in-process server, fully offline."""

import os

import pytest

from conftest import ROOT

ROLES_JS = """() => Array.from(document.querySelectorAll('#token-view .sv-tokens .sv-tok'))
                   .map(e => e.dataset.role)"""
TEXT_JS = "() => (document.querySelector('#token-view .sv-tokens') || {}).innerText || ''"


def open_page(page, url):
    page.goto(url, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=30000)


def wait_text_change(page, before, timeout=15000):
    page.wait_for_function(f"(b) => ({TEXT_JS})() !== b", arg=before, timeout=timeout)


def test_default_page_loads_offline_with_all_three_roles(page, server):
    open_page(page, server)
    roles = page.evaluate(ROLES_JS)
    assert {"context", "target", "masked"} <= set(roles)
    assert page.locator("#mode input[type=radio]:checked").get_attribute("value").startswith("Answer only")
    assert page.external_requests == []
    # the tooltip explains the position, id, label and what it predicts
    tip = page.locator('#token-view .sv-tokens .sv-tok[data-role="context"]').last.get_attribute("title")
    assert "position" in tip and "label -100" in tip and "predicts" in tip


def test_whole_text_mode_has_no_context_and_switching_example_updates(page, server):
    open_page(page, server)
    before = page.evaluate(TEXT_JS)
    page.get_by_label("Whole text").check()
    page.wait_for_function(f"() => !({ROLES_JS})().includes('context')", timeout=15000)
    assert "target" in page.evaluate(ROLES_JS)
    before = page.evaluate(TEXT_JS)
    page.locator("#next").click()
    wait_text_change(page, before)
    assert page.locator("#example-index input[type=number]").input_value() == "1"
    page.wait_for_function("() => location.search.includes('mode=whole')", timeout=10000)


def test_switching_sample_updates_view(page, server):
    open_page(page, server)
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_chat").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    page.wait_for_function("() => location.search.includes('sample=quiz_chat')", timeout=10000)


def test_upload_sample_file_then_bad_file_then_recover(page, server, tmp_path):
    open_page(page, server)
    page.get_by_role("tab", name="Upload").click()
    sample = os.path.join(ROOT, "assets", "samples", "quiz_question_answer.jsonl")
    page.locator("#upload input[type=file]").set_input_files(sample)
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('question/answer')",
                           timeout=20000)
    assert page.locator("#prompt-template textarea").input_value().startswith("Question:")
    assert "TRL gets" in page.locator("#template-preview").inner_text()
    # editing the template changes what TRL gets
    page.locator("#prompt-template textarea").fill("Q: {{ question }}\nA:")
    page.locator("#apply-template").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('Q:')", timeout=20000)
    assert "Question:" not in page.evaluate(TEXT_JS)

    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    page.locator("#upload button[aria-label*='Clear' i], #upload button[aria-label*='Remove' i]").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#status .sv-error') !== null", timeout=20000)
    assert "broken.jsonl: line 2 is not valid JSON" in page.locator("#status").inner_text()
    # the page keeps working
    page.get_by_role("tab", name="Sample").click()
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_chat").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert page.locator("#status .sv-error").count() == 0


def test_own_columns_open_the_template_editor_and_a_new_dataset_gets_its_own_template(page, server, tmp_path):
    open_page(page, server)
    page.get_by_role("tab", name="Upload").click()
    own = tmp_path / "own_columns.csv"
    own.write_text("input,target\nCapital of France?,Paris\nCapital of Peru?,Lima\n")
    page.locator("#upload input[type=file]").set_input_files(str(own))
    page.wait_for_function("() => document.querySelector('#status .sv-error') !== null", timeout=20000)
    assert "unrecognised columns ['input', 'target']" in page.locator("#status").inner_text()
    page.locator("#prompt-template textarea").fill("Q: {{ input }}\nA:")
    page.locator("#completion-template textarea").fill(" {{ target }}")
    page.locator("#apply-template").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('Paris')", timeout=20000)
    assert "your own columns" in page.locator("#status").inner_text()
    assert "context" in page.evaluate(ROLES_JS) and "target" in page.evaluate(ROLES_JS)
    # another dataset starts from its own default template, not the last one's
    page.get_by_role("tab", name="Sample").click()
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_question_answer").click()
    page.wait_for_function("() => document.querySelector('#prompt-template textarea').value.startsWith('Question:')",
                           timeout=20000)
    assert page.locator("#status .sv-error").count() == 0


def test_shared_url_restores_the_view(page, server):
    open_page(page, server.rstrip("/") + "/?sample=quiz_chat&mode=assistant&max_length=512&i=3")
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert page.locator("#example-index input[type=number]").input_value() == "3"
    assert page.locator("#mode input[type=radio]:checked").get_attribute("value").startswith("Assistant")
    assert page.locator("#max-length input").input_value() == "512"
    from sftviz import view
    from sftviz.labels import Options
    v = view.open_view(view.ViewRequest("quiz_chat", options=Options("assistant", 512)))
    seq, _ = v.displayed(3)
    assert page.evaluate(ROLES_JS) == seq.roles


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots(page, server, theme):
    open_page(page, f"{server}?__theme={theme}")
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    path = os.path.join(ROOT, "docs", f"screenshot-{theme}.png")
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 20000


POINTS_JS = """() => { const p = document.querySelector('#loss-plot .js-plotly-plot');
  if (!p || !p.data) return {};
  const out = {}; for (const t of p.data) out[t.name] = t.x.length; return out; }"""


def training_threads():
    import threading
    return [t for t in threading.enumerate() if t.name.startswith("sftviz-train")]


def wait_no_training_threads(timeout=20):
    import time
    end = time.time() + timeout
    while training_threads() and time.time() < end:
        time.sleep(0.2)
    return training_threads()


def test_train_streams_two_growing_curves_then_generations(page, server):
    open_page(page, server)
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#train-steps input").fill("120")
    page.locator("#train-button").click()
    page.wait_for_function(f"() => Object.keys(({POINTS_JS})()).some(k => k.includes('train'))", timeout=20000)
    first = page.evaluate(POINTS_JS)
    page.wait_for_timeout(1500)
    later = page.evaluate(POINTS_JS)
    train_curves = [k for k in later if k.endswith(": train")]
    assert len(train_curves) == 2
    assert any(later[k] > first.get(k, 0) for k in train_curves)
    page.wait_for_function("() => document.querySelector('#generations table') !== null", timeout=120000)
    assert "whole text" in page.locator("#generations").inner_text()
    assert page.locator("#loss-heatmap .sv-heat").count() > 0
    assert not wait_no_training_threads()


def test_stop_and_disconnect_end_the_training(page, browser, server):
    open_page(page, server)
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#train-steps input").fill("20000")
    page.locator("#train-button").click()
    page.wait_for_function(f"() => Object.keys(({POINTS_JS})()).length > 0", timeout=20000)
    assert training_threads()
    page.locator("#stop-button").click()
    assert not wait_no_training_threads()
    # the status says so, instead of a frozen "Training… step 46/20000"
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Stopped')",
                           timeout=10000)
    # a closed tab stops its job too
    page.locator("#train-button").click()
    import time
    end = time.time() + 20
    while not training_threads() and time.time() < end:
        time.sleep(0.1)
    assert training_threads()
    page.close()
    assert not wait_no_training_threads(30)


def test_at_most_two_trainings_run_and_the_third_waits_in_the_queue(server):
    import time

    from gradio_client import Client
    from gradio_client.utils import Status

    client = Client(server, verbose=False)
    client.predict(sample="quiz_prompt_completion", hub_id="", tokenizer="default", prompt_template="",
                   completion_template="", mode="Answer only (completion_only_loss)", max_length=1024, packing=False,
                   packing_strategy="bfd", example_index=0, api_name="/refresh")  # this session's view
    args = dict(preset="Quick demo (~10-30 s)", train_modes=["Whole text", "Answer only (completion_only_loss)"],
                train_steps=20000, train_lr=0.001, train_seed=0, train_model="tiny")
    jobs = [client.submit(**args, api_name="/train_stream") for _ in range(3)]
    try:
        end = time.time() + 30
        running = (Status.PROCESSING, Status.ITERATING)
        while time.time() < end and sum(j.status().code in running for j in jobs) < 2:
            time.sleep(0.2)
        time.sleep(1)
        codes = [j.status().code for j in jobs]
        assert sum(c in running for c in codes) == 2
        waiting = [j.status() for j in jobs if j.status().code == Status.IN_QUEUE]
        assert len(waiting) == 1 and waiting[0].rank is not None  # the page shows this position
        assert len(training_threads()) == 4  # two paired jobs, two runs each
    finally:
        for j in jobs:
            j.cancel()
    assert not wait_no_training_threads(30)


def test_doctor_tab_shows_cut_answers_and_opens_the_example_with_the_cut_marked(page, server):
    open_page(page, server)
    page.locator("#max-length input").fill("40")
    page.locator("#max-length input").press("Enter")
    page.get_by_role("tab", name="Doctor").click()
    page.wait_for_function("() => document.querySelector('#doctor-report').innerText.includes('Answers cut by "
                           "max_length 40')", timeout=20000)
    assert page.locator('#doctor-report .sv-finding[data-check="answers_cut"]').count() == 1
    page.locator('#doctor-report .sv-finding[data-check="answers_cut"] button[data-open]').first.click()
    page.wait_for_function("() => document.querySelector('#main-tabs [role=tab][aria-selected=true]').innerText"
                           ".includes('Tokens')", timeout=20000)
    page.wait_for_function("() => document.querySelectorAll('#token-view .sv-changed').length > 0", timeout=20000)
    marked = page.evaluate("() => Array.from(document.querySelectorAll('#token-view .sv-changed'))"
                           ".map(e => +e.dataset.pos)")
    assert marked == [39]  # the last token TRL keeps: the answer is cut right after it
    page.screenshot(path=os.path.join(ROOT, "docs", "screenshot-doctor.png"), full_page=True)


def test_doctor_checks_every_row_of_a_big_upload_with_a_progress_bar_while_browsing_works(page, server, tmp_path,
                                                                                          monkeypatch):
    import json

    from sftviz import view
    monkeypatch.setattr(view, "MAX_ROWS", 40)  # the page holds the first 40 rows; the pass reads all 3,000
    monkeypatch.setattr(view, "FULL_CHUNK", 100)
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(3000):
            answer = " yes" if i < 1500 else " " + " ".join(["long answer"] * 30)
            f.write(json.dumps({"prompt": f"Question {i}: ok?\nAnswer:", "completion": answer}) + "\n")
    open_page(page, server)
    page.locator("#max-length input").fill("40")
    page.locator("#max-length input").press("Enter")
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.get_by_role("tab", name="Doctor").click()
    page.wait_for_function("() => document.querySelector('#doctor-progress progress') !== null", timeout=30000)
    before = page.evaluate(TEXT_JS)
    page.locator("#next").click()  # browsing while the pass runs
    wait_text_change(page, before, timeout=5000)
    page.wait_for_function("() => document.querySelector('#doctor-report').innerText.includes('Every row of big.jsonl')",
                           timeout=120000)
    report = page.locator("#doctor-report").inner_text()
    assert "Answers cut by max_length 40" in report and "1,500 of 3,000" in report
    assert page.locator("#doctor-progress progress").count() == 0
