"""What the page's server spends on Gradio's own bookkeeping, as Gradio ships and as app.py sets it up:

- outputs a handler leaves alone: Gradio rebuilds each one for the session to send a bare skip;
  app.skip_untouched sends the same skip with nothing rebuilt;
- the queue's analytics summary (pandas, over its last 10,000 events) recomputed after every event, for a
  /monitoring dashboard, which app.py turns off; app.py also sets GRADIO_ANALYTICS_CACHE_FREQUENCY so it never is.

    python benchmarks/bench_gradio_overhead.py [--flood-s 15]

1. In this process: milliseconds to postprocess a refused refresh (one output of 25 changed) and a full first
   view (35 outputs), each way; and the analytics summary per event with 10,000 events recorded.
2. A server in a child process, each way, under load_classroom.hostile (one script visitor posting a new link,
   a slow template, a Train press and an upload every 0.2 s, most of them refused): the server process's own
   CPU seconds (its children's not counted), over the same wall time, and the same with nobody on the page.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def postprocess_ms(n=40):
    import types

    from gradio.state_holder import SessionState

    import app
    from sftviz import page
    gradios = types.MethodType(type(app.demo).postprocess_data, app.demo)
    fast = types.SimpleNamespace(postprocess_data=gradios)
    app.skip_untouched(fast)
    fns = {f.api_name: f for f in app.demo.fns.values()}
    refresh, first = fns["refresh"], fns["first_view"]
    status = next(b for b in refresh.outputs if b.elem_id == "status")
    by_id = {b.elem_id: b for b in first.outputs if not b.stateful}
    full = {by_id[k]: v for k, v in page.clean_out(page.first_view({})).items() if k in by_id}
    cases = {"refused refresh": (refresh, lambda: {status: "<p>too many requests</p>"}),
             "first view": (first, lambda: dict(full))}
    for name, (fn, returned) in cases.items():
        times = {}
        for way, post in (("gradio", gradios), ("skip_untouched", fast.postprocess_data)):
            state = SessionState(app.demo)
            asyncio.run(post(fn, returned(), state))  # warm
            t = time.perf_counter()
            for _ in range(n):
                asyncio.run(post(fn, returned(), state))
            times[way] = (time.perf_counter() - t) / n * 1000
        print(f"{name:16s} gradio {times['gradio']:6.1f} ms   skip_untouched {times['skip_untouched']:6.1f} ms   "
              f"ratio {times['gradio'] / times['skip_untouched']:5.1f}x", flush=True)


def analytics_ms(n=10_000, events=5):
    import random

    from gradio.queueing import Queue
    records = [{"time": time.time(), "status": random.choice(["success", "failed"]), "process_time": random.random(),
                "function": f"fn{i % 30}", "session_hash": "s"} for i in range(n)]
    q = Queue.__new__(Queue)  # (only what compute_analytics_summary reads)
    q.events_recorded, q.event_count_at_last_cache, q.events_recorded_per_fn = 0, 0, {}
    q.cached_event_analytics_summary = {"functions": {}}
    took = {}
    for way, every in (("gradio", 1), ("app.py", int(os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"]))):
        q.ANAYLTICS_CACHE_FREQUENCY = every
        t = time.perf_counter()
        for _ in range(events):
            q.events_recorded += 1
            q.compute_analytics_summary(records)
        took[way] = (time.perf_counter() - t) / events * 1000
    print(f"analytics summary per event, {n:,} events recorded: gradio {took['gradio']:.1f} ms   "
          f"app.py {took['app.py']:.3f} ms", flush=True)


def cpu_s():
    rest = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def serve_and_flood(way, flood_s):
    """(In a child process.) The server, one way, then nobody for flood_s, then the flood for flood_s."""
    if way == "gradio":
        os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = "1"
        os.environ["GRADIO_ANALYTICS_MAX_EVENTS"] = "10000"
    import app
    if way == "gradio":
        app.skip_untouched = lambda blocks: None
    app.warm_up()
    demo = app.start("127.0.0.1", prevent_thread_lock=True, quiet=True)
    time.sleep(10)  # the warm-up's default view
    out = {}
    for what in ("idle", "flood"):
        c, t = cpu_s(), time.time()
        if what == "idle":
            time.sleep(flood_s)
        else:
            code = ("import json, sys, time; sys.path.insert(0, 'benchmarks'); from load_classroom import hostile; "
                    f"print(json.dumps(sum(hostile({demo.local_url!r}, time.time() + {flood_s}).values())))")
            out["requests"] = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                                                        capture_output=True).stdout)
        out[what] = (cpu_s() - c, time.time() - t)
    print(json.dumps(out), flush=True)
    demo.close()
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood-s", type=float, default=15)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_and_flood(args.serve, args.flood_s)
    postprocess_ms()
    analytics_ms()
    got = {}
    for way in ("gradio", "app.py"):
        run = subprocess.run([sys.executable, __file__, "--serve", way, "--flood-s", str(args.flood_s)],
                             capture_output=True, text=True, cwd=ROOT)
        got[way] = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("{")))
        g = got[way]
        print(f"server {way:6s}: idle {g['idle'][0]:5.1f} CPU s in {g['idle'][1]:.0f} s; flood of "
              f"{g['requests']} requests {g['flood'][0]:5.1f} CPU s in {g['flood'][1]:.0f} s", flush=True)
    extra = {way: g["flood"][0] - g["idle"][0] * g["flood"][1] / g["idle"][1] for way, g in got.items()}
    print(f"the flood's own server CPU: gradio {extra['gradio']:.1f} s, app.py {extra['app.py']:.1f} s "
          f"(ratio {extra['gradio'] / max(extra['app.py'], 0.01):.1f}x)")


if __name__ == "__main__":
    main()
