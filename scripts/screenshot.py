"""Start the app, open it in headless Chromium, save the README's screenshots: the default view (light and dark,
1366x768 wide), the Train tab after a quick training, the first screen of a phone (390x844), and a lesson step
(/?lesson=sft) revealed after a wrong prediction, on a laptop and on a phone; then every lesson step, revealed
(Check with nothing picked), on both, in docs/lesson/.

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
    """docs/lesson/step-K-laptop.png and -phone.png: each step after Check with nothing picked (the reveal and
    its feedback), so every step can be looked at on both screens."""
    from sftviz.lesson import STEPS

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for size, viewport in (("laptop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{url}?lesson=sft", wait_until="load")
        for k in range(len(STEPS)):
            if k:
                page.locator("#lesson-next").click()
            page.wait_for_function(f"() => (document.querySelector('#lesson-step')?.innerText || '').includes("
                                   f"'Step {k + 1} of')", timeout=60000)
            page.locator("#lesson-check").click()
            page.locator("#lesson-feedback .sv-feedback").wait_for(timeout=30000)
            paths.append(os.path.join(out_dir, f"step-{k + 1}-{size}.png"))
            page.screenshot(path=paths[-1], full_page=True)
        page.close()
    return paths


if __name__ == "__main__":
    from app import start

    demo = start("127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        print("\n".join(shoot(demo.local_url, sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs"))))
    finally:
        demo.close()
