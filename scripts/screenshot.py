"""Start the app, open it in headless Chromium, save screenshots (light and dark) for the README.

    python scripts/screenshot.py [OUT_DIR]     (default: docs/)
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(url, out_dir, page_setup=None):
    from playwright.sync_api import sync_playwright

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        for theme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}?__theme={theme}", wait_until="load")
            page.locator("#token-view .sv-tokens").wait_for(timeout=30000)
            if page_setup:
                page_setup(page)
            path = os.path.join(out_dir, f"screenshot-{theme}.png")
            page.screenshot(path=path, full_page=True)
            paths.append(path)
            page.close()
        browser.close()
    return paths


if __name__ == "__main__":
    from app import start

    demo = start("127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        print("\n".join(shoot(demo.local_url, sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs"))))
    finally:
        demo.close()
