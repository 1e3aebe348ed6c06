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
    assert "mode=whole" in page.evaluate("() => location.search")


def test_switching_sample_updates_view(page, server):
    open_page(page, server)
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_chat").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert "sample=quiz_chat" in page.evaluate("() => location.search")


def test_upload_sample_file_then_bad_file_then_recover(page, server, tmp_path):
    open_page(page, server)
    page.get_by_role("tab", name="Upload").click()
    sample = os.path.join(ROOT, "assets", "samples", "quiz_question_answer.jsonl")
    page.locator("#upload input[type=file]").set_input_files(sample)
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('question/answer')",
                           timeout=20000)
    assert page.locator("#prompt-template textarea").input_value().startswith("Question:")
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    page.locator("#upload button[aria-label*='Clear' i], #upload button[aria-label*='Remove' i]").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#status .sv-error') !== null", timeout=20000)
    assert "cannot read broken.jsonl" in page.locator("#status").inner_text()
    # the page keeps working
    page.get_by_role("tab", name="Sample").click()
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_chat").click()
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert page.locator("#status .sv-error").count() == 0


def test_shared_url_restores_the_view(page, server):
    open_page(page, server.rstrip("/") + "/?sample=quiz_chat&mode=assistant&max_length=512&i=3")
    page.wait_for_function(f"() => ({TEXT_JS})().includes('<|im_start|>')", timeout=20000)
    assert page.locator("#example-index input[type=number]").input_value() == "3"
    assert page.locator("#mode input[type=radio]:checked").get_attribute("value").startswith("Assistant")
    assert page.locator("#max-length input").input_value() == "512"
    from sftviz import view
    v = view.open_view("quiz_chat", "default", "", "", "assistant", 512, False, "bfd")
    seq, _ = v.displayed(3)
    assert page.evaluate(ROLES_JS) == seq.roles


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots(page, server, theme):
    open_page(page, f"{server}?__theme={theme}")
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    path = os.path.join(ROOT, "docs", f"screenshot-{theme}.png")
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 20000
