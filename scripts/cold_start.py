"""Cold start: the time from `python app.py` to the first page served, and to the first view shown in a browser.

    python scripts/cold_start.py [APP_PYTHON] [--dir CHECKOUT] [--port 7899]

Starts `APP_PYTHON app.py` (default: this interpreter) in CHECKOUT (default: this checkout), polls the port until
the page is served, opens it at once in headless Chromium (Playwright from this interpreter) and waits for the
tokens of the first view; prints both times and whether the page said it was warming up meanwhile.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    from scripts.screenshot import CHROMIUM_ARGS

    ap = argparse.ArgumentParser()
    ap.add_argument("python", nargs="?", default=sys.executable)
    ap.add_argument("--dir", default=ROOT)
    ap.add_argument("--port", type=int, default=7899)
    args = ap.parse_args()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(args.port)}
    url = f"http://127.0.0.1:{args.port}/"
    start = time.perf_counter()
    proc = subprocess.Popen([args.python, "app.py"], cwd=args.dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - start > 300:
                    sys.exit("the app did not start")
                time.sleep(0.1)
        served = time.perf_counter() - start
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#status").wait_for(timeout=60000)
            warming = "Warming up" in page.locator("#status").inner_text()
            page.locator("#token-view .sv-tokens").first.wait_for(timeout=120000)
            shown = time.perf_counter() - start
            browser.close()
        print(f"python app.py -> page served: {served:.1f} s; first view shown in Chromium: {shown:.1f} s "
              f"(the page said 'warming up' meanwhile: {'yes' if warming else 'no, it was ready'})")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
