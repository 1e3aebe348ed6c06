"""Start the app, open it in headless Chromium, save the README's screenshots: the default view (light and dark,
1366x768 wide), the Train tab after a quick training, the first screen of a phone (390x844), and a lesson step
(/?lesson=sft) revealed after a wrong prediction, on a laptop and on a phone; then every lesson step, revealed,
on both, and the teacher's view (/?teach=sft) of a class, in docs/lesson/.

    python scripts/screenshot.py [OUT_DIR]     (default: docs/)

tests/test_app_browser.py::test_screenshots calls shoot() too, so the test run regenerates them.
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}
TRAIN_STEPS = 120  # a short training for the Train tab's picture (about 10 s here)


def _open(browser, url, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(url, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
    return page


def shoot(url, out_dir, browser=None):
    """Save the screenshots in out_dir (in `browser`, a Playwright browser, else a Chromium started here); returns
    their paths."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            try:
                return shoot(url, out_dir, browser)
            finally:
                browser.close()
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    def save(page, name, full_page=True):
        paths.append(os.path.join(out_dir, f"screenshot-{name}.png"))
        page.screenshot(path=paths[-1], full_page=full_page)

    for theme in ("light", "dark"):
        page = _open(browser, f"{url}?__theme={theme}", DESKTOP)
        save(page, theme)
        page.close()
    page = _open(browser, url, DESKTOP)
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#train-steps input").fill(str(TRAIN_STEPS))
    page.locator("#train-button").click()
    page.locator("#train-verdict .sv-verdict").wait_for(timeout=180000)
    page.wait_for_timeout(500)  # the last plot drawn
    save(page, "train")
    page.close()
    page = _open(browser, url, PHONE)
    page.wait_for_function("() => !document.querySelector('#settings > button.label-wrap.open')", timeout=10000)
    save(page, "phone", full_page=False)  # the first screen: the tokens are on it
    page.close()
    # another trainer: TRL 0.19's collator with a response marker only, beside TRL 1.16's assistant turns
    page = _open(browser, f"{url}?sample=quiz_chat&i=1&trainer=trl-0.19&response=%3C%7Cim_start%7C%3Eassistant%0A",
                 DESKTOP)
    page.get_by_role("tab", name="Compare modes").click()
    page.locator("#mode-compare .sv-changed").first.wait_for(timeout=30000)
    save(page, "trainers")
    page.close()
    # a doctor finding opened: lesson_bugs at max_length 32, the answer cut
    page = _open(browser, f"{url}?sample=lesson_bugs&max_length=32", DESKTOP)
    page.get_by_role("tab", name="Doctor").click()
    page.locator("#doctor-report button.sv-open[data-open]").first.click()
    page.locator("#token-view .sv-changed").first.wait_for(timeout=30000)
    save(page, "doctor")
    page.close()
    # what a real model already knows (the offline SmolLM2, where installed): a chat with no system message
    from sftviz import model_loss
    if model_loss.offline_installed():
        page = _open(browser, f"{url}?sample=quiz_chat&i=2", DESKTOP)
        page.get_by_role("tab", name="Real model").click()
        page.locator("#model-choice input").click()
        page.get_by_role("option", name="SmolLM2-135M-Instruct (offline)").click()
        page.locator("#model-view .sv-model-tokens").wait_for(timeout=120000)
        page.locator("#model-dataset-button").click()
        page.locator("#model-dataset .sv-roles").wait_for(timeout=120000)
        save(page, "model")
        page.close()
    for name, viewport in (("lesson", DESKTOP), ("lesson-phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{url}?lesson=sft", wait_until="load")
        page.locator("#lesson-next").click()  # step 2: whole text or only the answer?
        page.wait_for_function("() => (document.querySelector('#lesson-step')?.innerText || '').includes('Step 2')",
                               timeout=60000)
        for pos in (9, 14, 15):  # "?", "." and the EOS: one wrong pick, two right, one missed
            page.locator(f"#lesson-tokens .sv-pick[data-pos='{pos}']").click()
        page.locator("#lesson-check").click()
        page.locator("#lesson-feedback .sv-feedback").wait_for(timeout=30000)
        save(page, name)
        page.close()
    paths += lesson_steps(browser, url, os.path.join(out_dir, "lesson"))
    return paths


def lesson_steps(browser, url, out_dir):
    """docs/lesson/step-K-laptop.png and -phone.png: each step after Check (the reveal and its feedback) with nothing
    picked, Run A picked after the training in the training step, example 2 in the bug hunt; so every step can be
    looked at on both screens. The laptop's student is in a class: docs/lesson/teacher.png is the teacher's view
    (/?teach=sft) after it."""
    from sftviz.lesson import STEPS

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    teacher = browser.new_page(viewport=DESKTOP)
    teacher.goto(f"{url}?teach=sft", wait_until="load")
    teacher.locator("#class-link a").wait_for(timeout=60000)
    link = teacher.locator("#class-link a").get_attribute("href")
    for size, viewport in (("laptop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        page.goto(link if size == "laptop" else f"{url}?lesson=sft", wait_until="load")
        for k, step in enumerate(STEPS):
            if k:
                page.locator("#lesson-next").click()
            page.wait_for_function(f"() => (document.querySelector('#lesson-step')?.innerText || '').includes("
                                   f"'Step {k + 1} of')", timeout=60000)
            if step.kind == "runs":
                page.locator("#lesson-train").click()
                page.wait_for_function("() => document.querySelector('#lesson-train-status')?.innerText"
                                       ".includes('Done in')", timeout=120000)
            if step.kind in ("runs", "hunt"):
                page.locator("#lesson-tokens .sv-pick[data-pos='%d']" % (0 if step.kind == "runs" else 1)).click()
            page.locator("#lesson-check").click()
            page.locator("#lesson-feedback .sv-feedback").wait_for(timeout=30000)
            page.wait_for_timeout(300)  # (a plot's redraw)
            paths.append(os.path.join(out_dir, f"step-{k + 1}-{size}.png"))
            page.screenshot(path=paths[-1], full_page=True)
        page.close()
    teacher.wait_for_function("() => document.querySelector('#class-summary')?.innerText.includes('1 student')",
                              timeout=10000)
    teacher.wait_for_timeout(2500)  # the summary's next refresh: every Check counted
    paths.append(os.path.join(out_dir, "teacher.png"))
    teacher.screenshot(path=paths[-1], full_page=True)
    teacher.close()
    return paths


if __name__ == "__main__":
    from app import start, warm_up

    warm_up()
    demo = start("127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        print("\n".join(shoot(demo.local_url, sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs"))))
    finally:
        demo.close()
