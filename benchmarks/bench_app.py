"""Browser timings of the web app (headless Debian Chromium): first view, and switching examples.

    python benchmarks/bench_app.py [--n 1000] [--switches 60]

1. Time from the server being ready (launch returned) to the first token view on screen, new page.
2. A 1,000-example dataset (GSM8K from ../shared/assets mapped to prompt/completion, or the bundled
   quiz sample repeated when ../shared is absent) loaded from a file; then "Next" is clicked N times
   and each click is timed until the token view shows the new example. Prints p50/p95/max.
3. Live training on the bundled default: click to the first loss point on screen, and to the end.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
TEXT_JS = "() => (document.querySelector('#token-view .sv-tokens') || {}).innerText || ''"


def dataset(n):
    from sftviz import data
    gsm = os.path.join(os.path.dirname(ROOT), "shared", "assets", "data", "gsm8k_test.jsonl")
    rows = data.to_trl(data.load(gsm)) if os.path.exists(gsm) else data.load("quiz_prompt_completion")
    rows = (rows * (n // len(rows) + 1))[:n]
    path = os.path.join(tempfile.mkdtemp(), f"bench_{n}.jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path, "GSM8K" if os.path.exists(gsm) else "quiz sample"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--switches", type=int, default=60)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from screenshot import CHROMIUM_ARGS

    from app import start

    path, name = dataset(args.n)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        demo = start("127.0.0.1", prevent_thread_lock=True, quiet=True)
        ready = time.perf_counter()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url, wait_until="load")
        page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
        first = time.perf_counter() - ready
        print(f"first token view on screen {first:.2f} s after the server was ready (target < 5 s)")

        page.get_by_role("tab", name="Hub").click()
        page.locator("#hub-id textarea, #hub-id input").first.fill(path)
        t = time.perf_counter()
        page.locator("#hub-load").click()
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('1000 examples')",
                               timeout=120000)
        print(f"loaded {args.n} {name} examples (tokenize + label + stats) in {time.perf_counter() - t:.2f} s")
        times = []
        for _ in range(args.switches):
            before = page.evaluate(TEXT_JS)
            t = time.perf_counter()
            page.locator("#next").click()
            page.wait_for_function(f"(b) => ({TEXT_JS})() !== b", arg=before, timeout=30000)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"switch example ({args.switches} clicks on Next): p50 {statistics.median(times):.0f} ms, "
              f"p95 {p95:.0f} ms, max {times[-1]:.0f} ms (target p95 < 300 ms)")

        # Live training on the bundled default: time to the first loss point, and to the generations.
        page.goto(demo.local_url, wait_until="load")
        page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
        page.get_by_role("tab", name="Train: whole vs answer").click()
        t = time.perf_counter()
        page.locator("#train-button").click()
        page.wait_for_function("() => { const p = document.querySelector('#held-out-plot .js-plotly-plot');"
                               " return p && p.data && p.data.length > 0; }", timeout=60000)
        first_point = time.perf_counter() - t
        page.wait_for_function("() => document.querySelector('#generations table') !== null", timeout=300000)
        print(f"train (quick preset, bundled sample): first loss point on screen {first_point:.2f} s after the "
              f"click (target < 3 s); both runs + generations done in {time.perf_counter() - t:.1f} s")
        browser.close()
        demo.close()


if __name__ == "__main__":
    main()
