"""The web app in headless Chromium (Debian's), against an in-process server, fully offline."""

import os

import pytest

from conftest import ROOT

ROLES_JS = """() => Array.from(document.querySelectorAll('#token-view .sv-tokens .sv-tok'))
                   .map(e => e.dataset.role)"""
TEXT_JS = "() => (document.querySelector('#token-view .sv-tokens') || {}).innerText || ''"


def open_page(page, url):
    page.goto(url, wait_until="load")
    page.locator("#token-view .sv-tokens").first.wait_for(timeout=30000)


def wait_text_change(page, before, timeout=15000):
    page.wait_for_function(f"(b) => ({TEXT_JS})() !== b", arg=before, timeout=timeout)


def test_default_page_loads_offline_with_all_three_roles(page, server):
    open_page(page, server)
    roles = page.evaluate(ROLES_JS)
    assert {"context", "target", "masked"} <= set(roles)
    checked = page.locator("#mode input[type=radio]:checked")
    assert checked.get_attribute("value") == "auto"  # SFTConfig's default, and what it resolves to here
    assert "TRL default → answer only" in page.locator("#mode label:has(input:checked)").inner_text()
    assert page.external_requests == []
    # the tooltip explains the position, id, label and what it predicts
    tip = page.locator('#token-view .sv-tokens .sv-tok[data-role="context"]').last.get_attribute("title")
    assert "position" in tip and "] = -100 (not trained)" in tip and "input_ids[" in tip


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
    from sftviz import view
    from sftviz.labels import Options
    seq, _ = view.open_view(view.ViewRequest("quiz_chat", options=Options("completion"))).displayed(0)
    assert page.evaluate(ROLES_JS) == seq.roles  # the chat's first example, labelled as the engine labels it
    assert "quiz_chat" in page.locator("#status").inner_text()


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
    assert "unrecognised columns input, target" in page.locator("#status").inner_text()
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
    assert page.locator("#mode input[type=radio]:checked").get_attribute("value") == "assistant"
    assert page.locator("#max-length input").input_value() == "512"
    from sftviz import view
    from sftviz.labels import Options
    v = view.open_view(view.ViewRequest("quiz_chat", options=Options("assistant", 512)))
    seq, _ = v.displayed(3)
    assert page.evaluate(ROLES_JS) == seq.roles


FIX_ROLES_JS = """() => Array.from(document.querySelectorAll('#token-view .sv-tokens'))
                   .map(b => Array.from(b.querySelectorAll('.sv-tok')).map(e => e.dataset.role))"""


def oracle_roles(rows, i):
    """The roles of example i as TRL's SFTTrainer + collator label it (the page's default mode)."""
    from conftest import get_tokenizer
    from trl_reference import trl_rows
    records, _, _ = trl_rows(rows, get_tokenizer("default"), "completion", 1024)
    return ["context" if lab == -100 else "target" for lab in records[i]["labels"]]


def test_the_learners_file_shows_trls_refusal_and_both_fixes_with_trls_labels(page, server):
    """prompt / answer / text: TRL stops (KeyError: 'completion'); both fixes are shown, one click each, and
    each fix's labels are the oracle's for the file so fixed."""
    from sftviz import data
    open_page(page, server.rstrip("/") + "/?sample=quiz_prompt_answer_text&i=2")
    status = page.locator("#status").inner_text()
    assert "KeyError: 'completion'" in status and "Fix 1" in status
    assert "Fix 2" in status
    choices = page.locator("#columns input[type=radio]")
    assert choices.count() == 3 and choices.first.is_checked()
    raw = data.load("quiz_prompt_answer_text")
    dropped = [{k: v for k, v in r.items() if k != "prompt"} for r in raw]
    renamed = [{"prompt": r["prompt"], "completion": r["answer"]} for r in raw]
    whole, answer = oracle_roles(dropped, 2), oracle_roles(renamed, 2)
    both = page.evaluate(FIX_ROLES_JS)
    assert len(both) == 2
    for shown, expected in zip(both, (whole, answer)):
        assert shown[:len(expected)] == expected and set(shown[len(expected):]) <= {"masked"}
    assert "context" not in whole and "context" in answer
    page.screenshot(path=os.path.join(ROOT, "docs", "screenshot-learner.png"), full_page=True)

    # one click: fix 2 (answer only), then fix 1 (whole text); the link follows
    page.get_by_label(data.READINGS["map"]).check()
    page.wait_for_function("() => location.search.includes('columns=map')", timeout=20000)
    page.wait_for_function(f"() => ({FIX_ROLES_JS})().length === 1", timeout=20000)
    shown = page.evaluate(ROLES_JS)
    assert shown[:len(answer)] == answer
    page.get_by_label(data.READINGS["drop_prompt"]).check()
    page.wait_for_function("() => location.search.includes('columns=drop_prompt')", timeout=20000)
    page.wait_for_function(f"() => !({ROLES_JS})().includes('context')", timeout=20000)
    shown = page.evaluate(ROLES_JS)
    assert shown[:len(whole)] == whole
    assert "never read" not in page.locator("#status").inner_text()


def test_screenshots(browser, server):
    """The README's screenshots, regenerated (scripts/screenshot.py): default view light and dark, the Train tab
    after a training, a phone's first screen, another trainer's labels compared, a doctor finding opened, the real
    model's tab with its dataset pass, the lesson's steps and the teacher's view."""
    from scripts.screenshot import shoot
    paths = shoot(server, os.path.join(ROOT, "docs"), browser)
    names = ("light", "dark", "train", "phone", "trainers", "doctor", "model", "lesson", "lesson-phone")
    assert [os.path.basename(p) for p in paths[:len(names)]] == [f"screenshot-{n}.png" for n in names]
    from sftviz.lesson import STEPS
    assert len(paths) == len(names) + 2 * len(STEPS) + 1  # every lesson step, on a laptop and a phone; the teacher
    assert os.path.basename(paths[-1]) == "teacher.png"
    assert all(os.path.getsize(p) > 20000 for p in paths)


POINTS_JS = """() => { const p = document.querySelector('#train-plot .js-plotly-plot');
  if (!p || !p.data) return {};
  const out = {}; for (const t of p.data) out[t.name] = t.x.length; return out; }"""


def training_threads():
    """The training jobs whose worker process is alive (trainings run outside the web server's process)."""
    from sftviz import jobs
    with jobs.POOL.lock:
        return [j for j in jobs.POOL.live.values() if j.key[0] == "train" and j.pid is not None]


def wait_no_training_threads(timeout=20):
    import time
    end = time.time() + timeout
    while training_threads() and time.time() < end:
        time.sleep(0.2)
    return training_threads()


def test_train_streams_two_growing_curves_then_generations(page, server):
    open_page(page, server)
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#more-train > button").click()  # the training-loss plot: a point at every step
    page.locator("#train-steps input").fill("150")  # not a run the screenshots made (it would replay at once)
    page.locator("#train-button").click()
    page.wait_for_function(f"() => Object.keys(({POINTS_JS})()).length > 0", timeout=20000)
    first = page.evaluate(POINTS_JS)
    page.wait_for_timeout(1500)
    later = page.evaluate(POINTS_JS)
    train_curves = list(later)
    assert len(train_curves) == 2
    assert any(later[k] > first.get(k, 0) for k in train_curves)
    page.wait_for_function("() => document.querySelector('#generations .sv-gen-item') !== null", timeout=120000)
    assert "whole text" in page.locator("#generations").inner_text()
    assert page.locator("#loss-heatmap .sv-heat").count() > 0
    assert not wait_no_training_threads()


def test_stop_and_disconnect_end_the_training(page, browser, server):
    open_page(page, server)
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#more-train > button").click()
    page.locator("#train-steps input").fill("5000")
    page.locator("#train-button").click()
    page.wait_for_function(f"() => Object.keys(({POINTS_JS})()).length > 0", timeout=20000)
    assert training_threads()
    page.locator("#stop-button").click()
    left = wait_no_training_threads()
    import gc
    assert not left, ([(j.watchers, j.state) for j in left], gc.collect(), [(j.watchers, j.state) for j in left])
    # the status says so, instead of a frozen "Training… step 46/5000"
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


def test_a_class_pressing_train_shares_identical_runs_and_queues_distinct_ones(server):
    import time

    from gradio_client import Client
    from gradio_client.utils import Status

    from sftviz import jobs

    def student():  # a visitor (a session of its own) with the default view loaded
        client = Client(server, verbose=False)
        client.predict(sample="quiz_prompt_completion", hub_id="", columns="As TRL reads your file",
                       text_field="text", tokenizer="default", prompt_template="", completion_template="",
                       mode="completion", max_length=1024, packing=False,
                       packing_strategy="bfd", example_index=0, api_name="/refresh")
        return client

    args = dict(preset="Quick demo (~10-30 s)", train_modes=["Whole text", "Answer only (completion_only_loss)"],
                train_steps=5000, train_lr=0.001, train_model="tiny", train_weighted=False, train_weight=0.1)
    computed = jobs.POOL.computed
    presses = [student().submit(**args, train_seed=seed, api_name="/train_stream") for seed in (0, 0, 0, 1, 2)]
    try:
        end = time.time() + 60
        while time.time() < end and jobs.POOL.busy() != (2, 1):
            time.sleep(0.2)
        assert jobs.POOL.busy() == (2, 1)  # 3 distinct runs: 2 train (one per core), 1 waits
        assert jobs.POOL.computed - computed == 2
        running = (Status.PROCESSING, Status.ITERATING)

        def seen():  # the latest status each visitor's page shows
            return [str(p.outputs()[-1]) if p.outputs() else "" for p in presses]

        # the presses reach the server in any order: the shared run may be training or be the one waiting
        end = time.time() + 30
        while time.time() < end and not (all("shared with 2 other visitors" in s for s in seen()[:3])
                                         and sum("1st in line" in s for s in seen()) in (1, 3)):
            time.sleep(0.2)
        statuses = seen()
        assert all(p.status().code in running for p in presses)  # no visitor waits in Gradio's queue
        assert all("shared with 2 other visitors" in s for s in statuses[:3]), statuses
        assert not any("shared with" in s for s in statuses[3:]), statuses
        waiting = [i for i, s in enumerate(statuses) if "1st in line" in s]
        assert waiting in ([0, 1, 2], [3], [4]), statuses  # one distinct run waits, whoever asked for it
        assert len(training_threads()) == 2
    finally:
        for p in presses:
            p.cancel()
    assert not wait_no_training_threads(30)
