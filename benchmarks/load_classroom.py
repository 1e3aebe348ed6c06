"""A class on one server: simulated students browse and switch modes while trainings run, or follow the lesson.

    python benchmarks/load_classroom.py [--students 30] [--trainings 2] [--identical 0] [--seconds 60] [--hostile 1]
    python benchmarks/load_classroom.py --lesson --trainings 0 [--students 30] [--seconds 60]

Loopback only, bounded in time. Starts `python app.py` on 127.0.0.1 (its own process, as hosted), then:
  * each student is a gradio_client session: opens the page (the page's own first-view call, timed: "first
    view"), then
    clicks Next four times and switches the mode once, again and again, with --think seconds (2-6) between clicks;
  * --trainings sessions press Train (2,000 steps, so they run the whole time); the first --identical of
    them ask for the same run, the others each for a different seed. Their queue wait is the time from
    the click until their run trains (or is joined).
  * --hostile visitors (one script session each) flood the page the whole time: new links posted straight to
    the queue, refreshes with templates that run their whole 10-second budget, Train presses with new seeds
    (20,000 steps) and uploads; what they get back is counted by HTTP status.
With --lesson the students are in a class (/?lesson=sft&class=CODE, raw HTTP as the page sends its lesson events):
each Checks a few picks and goes Next every 2-6 s, asking where the class is every 2 s as the page's timer does;
the teacher's view (/?teach=sft) reads its summary every 2 s and moves the class every 16 s; one press of the
training step's Train (the run every student's press shares) is timed from click to done.
Prints p50 / p95 / max latency per action, errors, queue waits, and the server's memory (its process
plus the work children it forks), sampled every 0.5 s. A probe student in this process, at normal priority,
clicks Next every 0.5 s: its latencies are the server's, apart from the simulated clients' own CPU
starvation (they share the 2 cores at nice 10 with the trainings at nice 19).
"""

import argparse
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ["completion", "whole", "auto"]  # the mode radio's values (its labels are words for the page)
VIEW = dict(sample="quiz_prompt_completion", hub_id="", columns="As TRL reads your file", text_field="text",
            tokenizer="default", prompt_template="", completion_template="", max_length=1024, packing=False,
            packing_strategy="bfd", example_index=0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port):
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    end = time.time() + 120
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the app did not start within 120 s")


def memory_mb(pid):
    """Proportional memory (PSS: shared pages split between the processes sharing them) of the server and
    its children (the forked work processes), in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if int(entry) == pid or ppid == pid:
                with open(f"/proc/{entry}/smaps_rollup") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024
        except (OSError, StopIteration, ValueError):
            pass
    return total


def cpu_seconds(pid):
    """CPU time (user + system) of the server and its reaped children so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Stats:
    def __init__(self):
        self.lock, self.times, self.errors = threading.Lock(), {}, {}

    def add(self, kind, seconds=None, error=None):
        with self.lock:
            if error is None:
                self.times.setdefault(kind, []).append(seconds)
            else:
                self.errors.setdefault(kind, []).append(error)


def timed(stats, kind, call):
    t = time.perf_counter()
    try:
        result = call()
        if isinstance(result, (list, tuple)) and result and "sv-error" in str(result[0]):
            raise RuntimeError(str(result[0])[:120])
        stats.add(kind, time.perf_counter() - t)
        return result
    except Exception as e:  # counted and reported, the student goes on
        stats.add(kind, error=f"{type(e).__name__}: {e}"[:160])


def student(url, deadline, stats, seed, think):
    from gradio_client import Client

    rng = random.Random(seed)
    connected = timed(stats, "connect (gradio_client setup)", lambda: [Client(url, verbose=False)])
    if connected is None:
        return
    client = connected[0]
    timed(stats, "first view", lambda: client.predict(api_name="/first_view_cached"))  # what opening the page shows
    step = 0
    while time.time() < deadline:
        time.sleep(rng.uniform(*think))
        if step % 5 == 4:
            timed(stats, "mode switch", lambda: client.predict(mode=rng.choice(MODES), **VIEW,
                                                               api_name="/refresh"))
        else:
            timed(stats, "Next", lambda: client.predict(example_index=step % 300, api_name="/next"))
        step += 1


def probe(url, deadline, stats):
    """One more student, in this process at normal priority, clicking Next every 0.5 s: the server's own
    latency, apart from the simulated class's clients (which compete for the same 2 cores at nice 10)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(mode=MODES[0], **VIEW, api_name="/refresh")
    timed(stats, "first view (probe)", lambda: client.predict(api_name="/first_view_cached"))
    step = 0
    while time.time() < deadline:
        time.sleep(0.5)
        timed(stats, "Next (probe)", lambda: client.predict(example_index=step % 300, api_name="/next"))
        step += 1


def trainer(url, seed, stats, waits, stop):
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(mode=MODES[0], **VIEW, api_name="/refresh")
    t = time.perf_counter()
    job = client.submit(preset="Quick demo (~10-30 s)", train_modes=["Whole text", "Answer only (completion_only_loss)"], train_steps=2000,
                        train_lr=0.001, train_seed=seed, train_model="tiny", train_weighted=False, train_weight=0.1,
                        api_name="/train_stream")
    while not stop.is_set():  # the wait: until its run trains (or is shared), not just until the first message
        if any("Training…" in str(out) for out in job.outputs()[-3:]):
            waits.append(time.perf_counter() - t)
            break
        time.sleep(0.1)
    stop.wait()
    job.cancel()


def hostile(url, deadline):
    """One script visitor (one session) flooding the page until `deadline`, in a process of its own at the class's
    priority (a real one runs on its own machine): raw HTTP posts to Gradio's queue, nothing read back, so the
    script itself costs next to no CPU. Returns a Counter of (what, HTTP status)."""
    from collections import Counter

    import httpx

    os.nice(10)
    config = httpx.get(f"{url}config", timeout=10).json()
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    fn = {d.get("api_name"): (i, d["inputs"]) for i, d in enumerate(config["dependencies"])}
    session, answers = f"hostile{os.getpid()}", Counter()
    upload = os.path.join(ROOT, "assets", "samples", "quiz_prompt_completion.jsonl")
    form = {"sample": "quiz_question_answer", "hub-id": "", "columns": "As TRL reads your file",
            "text-field": "text", "tokenizer": "default", "completion-template": "", "mode": "whole",
            "max-length": 1024, "packing": False, "packing-strategy": "bfd", "example-index": 0,
            "preset": "Quick demo (~10-30 s)", "train-modes": ["Whole text"], "train-steps": 5000,
            "train-lr": 0.001, "train-model": "tiny", "train-weighted": False, "train-weight": 0.1}

    def join(http, api, what, params=None, **values):
        index, inputs = fn[api]
        data = [values.get(elem[i], form.get(elem[i])) for i in inputs]
        r = http.post(f"{url}gradio_api/queue/join", params=params or {},
                      json={"data": data, "fn_index": index, "session_hash": session})
        answers[(what, r.status_code)] += 1

    k = 0
    with httpx.Client(timeout=10) as http:
        while time.time() < deadline:
            k += 1
            join(http, "first_view", "new link", {"sample": "quiz_chat", "max_length": 100 + k})
            join(http, "refresh", "slow template", **{"prompt-template": "{% for i in range(10**8) %}{% endfor %}"
                                                                         + str(k)})
            join(http, "train_stream", "Train", **{"train-seed": k})
            with open(upload, "rb") as f:
                path = http.post(f"{url}gradio_api/upload", files={"files": f}).json()[0]
            join(http, "upload", "upload", upload={"path": path, "meta": {"_type": "gradio.FileData"}})
            time.sleep(0.2)
    return answers


def lesson_call(http, url, api, data, session, query=""):
    """A lesson event as the page sends it (queue=False: Gradio's /run route; None for each server-side State)."""
    r = http.post(f"{url}gradio_api/run/{api}{query}", json={"data": data, "session_hash": session})
    r.raise_for_status()
    out = r.json()["data"]
    if "sv-error" in str(out):
        raise RuntimeError(re.sub(r"<[^>]+>", "", next(str(x) for x in out if "sv-error" in str(x)))[:120])
    return out


def lesson_student(url, deadline, stats, seed, think, code):
    """A student in the class (/?lesson=sft&class=CODE): opens the lesson, then on each step Checks a few picks and
    goes Next (back to step 1 after the last), asking where the class is every FOLLOW_S as the page does."""
    import httpx

    rng, session, k = random.Random(seed), f"student{seed}-{os.getpid()}", 0
    with httpx.Client(timeout=30) as http:
        if timed(stats, "lesson: open (join the class)",
                 lambda: [lesson_call(http, url, "lesson_open", [None], session, f"?lesson=sft&class={code}")]) is None:
            return
        while time.time() < deadline:
            wait = rng.uniform(*think)
            while wait > 0 and time.time() < deadline:  # the page's timer, while the student thinks
                time.sleep(min(2, wait))
                wait -= 2
                timed(stats, "lesson: follow (every 2 s)",
                      lambda: lesson_call(http, url, "lesson_follow", [k, None, None], session))
            picks = ",".join(str(p) for p in sorted(rng.sample(range(6), rng.randint(0, 2)))) if k != 6 else "0"
            timed(stats, "lesson: Check", lambda: lesson_call(http, url, "lesson_check", [k, picks, None, None], session))
            time.sleep(rng.uniform(*think) / 2)
            timed(stats, "lesson: Next", lambda: lesson_call(http, url, "lesson_next", [k, "", None], session))
            k = (k + 1) % 8


def lesson_teacher(url, deadline, stats):
    """The teacher's view (/?teach=sft): its summary every 2 s, and the class moved to a step every 16 s. Returns
    the class code at once (the students need it) and goes on in a thread."""
    import httpx

    sys.path.insert(0, ROOT)
    from sftviz.lesson import STEPS

    http = httpx.Client(timeout=30)
    out = lesson_call(http, url, "lesson_open", [None], "teacher", "?teach=sft")
    code = re.search(r"Class code: `(\w+)`", str(out)).group(1)

    def run():
        n = 0
        while time.time() < deadline:
            time.sleep(2)
            n += 1
            timed(stats, "teacher: summary (every 2 s)", lambda: lesson_call(http, url, "class_summary", [None],
                                                                            "teacher"))
            if n % 8 == 0:
                step = STEPS[n // 8 % len(STEPS)]
                timed(stats, "teacher: move the class", lambda: lesson_call(
                    http, url, "class_move", [None, f"{STEPS.index(step) + 1}. {step.title}"], "teacher"))
        http.close()

    threading.Thread(target=run, daemon=True).start()
    return code


def lesson_trainer(url, stats):
    """One press of the training step's Train (every student's press is this same run, shared)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    t = time.perf_counter()
    job = client.submit(lesson_index=6, lesson_picks="", api_name="/lesson_train")
    while not job.done():
        time.sleep(0.2)
    said = str(job.outputs()[-1]) if job.outputs() else ""
    if "Done in" in said:
        stats.add("lesson: the shared training, click to done", time.perf_counter() - t)
    else:
        stats.add("lesson: the shared training, click to done", error=said[-160:])


def classroom(url, deadline, students, think, code=None):
    """One process of the simulated class (a few students as threads): their timings and errors. With a class
    `code`, the students follow the lesson in that class instead of browsing the tool."""
    os.nice(10)  # the class yields to the server: real students' browsers run on their own machines
    stats = Stats()
    threads = [threading.Thread(target=lesson_student if code else student,
                                args=(url, deadline, stats, k, think, code)[:6 if code else 5]) for k in students]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats.times, stats.errors


def machine_busy():
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--trainings", type=int, default=2)
    ap.add_argument("--identical", type=int, default=0, help="how many of the trainings ask for the same run")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--processes", type=int, default=6, help="client processes the students are spread over "
                    "(gradio_client is CPU-hungry: 30 sessions in one process measure its GIL, not the server)")
    ap.add_argument("--hostile", type=int, default=0, help="script visitors flooding the page (one session each)")
    ap.add_argument("--lesson", action="store_true", help="the students follow the lesson in a class (/?teach=sft "
                    "open, one shared training) instead of browsing the tool")
    ap.add_argument("--think", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"),
                    help="seconds a student waits between two clicks (uniform)")
    args = ap.parse_args()

    server, url = start_server(free_port())
    stats, waits, stop, memory = Stats(), [], threading.Event(), []
    try:
        idle = memory_mb(server.pid)
        trainers = [threading.Thread(target=trainer, args=(url, 0 if k < args.identical else 100 + k, stats, waits,
                                                             stop), daemon=True) for k in range(args.trainings)]
        for t in trainers:
            t.start()
        time.sleep(3 if args.trainings else 0)  # the trainings are running when the class arrives
        deadline = time.time() + args.seconds
        cpu_start, wall_start = cpu_seconds(server.pid), time.time()
        busy_start = machine_busy()
        prober = threading.Thread(target=probe, args=(url, deadline, stats), daemon=True)
        prober.start()
        flood = multiprocessing.get_context("spawn").Pool(args.hostile) if args.hostile else None
        hostiles = [flood.apply_async(hostile, (url, deadline)) for _ in range(args.hostile)]
        code = lesson_teacher(url, deadline, stats) if args.lesson else None
        if args.lesson:
            threading.Thread(target=lesson_trainer, args=(url, stats), daemon=True).start()
        groups = [list(range(args.students))[k::args.processes] for k in range(args.processes)]
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = [pool.apply_async(classroom, (url, deadline, group, args.think, code)) for group in groups]
            while not all(r.ready() for r in results) and time.time() < deadline + 60:
                memory.append(memory_mb(server.pid))
                time.sleep(0.5)
            for r in results:
                times, errors = r.get(timeout=60)
                for kind, ts in times.items():
                    stats.times.setdefault(kind, []).extend(ts)
                for kind, es in errors.items():
                    stats.errors.setdefault(kind, []).extend(es)
        prober.join(30)
        answers = sum((h.get(timeout=60) for h in hostiles), Counter())
        if flood:
            flood.close()
        wall = time.time() - wall_start
        server_cpu = (cpu_seconds(server.pid) - cpu_start) / wall
        machine = (machine_busy() - busy_start) / wall
        stop.set()
        for t in trainers:
            t.join(30)
    finally:
        server.kill()
        server.wait()

    print(f"{args.students} students for {args.seconds:.0f} s, {args.think[0]:g}-{args.think[1]:g} s between clicks, "
          f"{args.trainings} trainings "
          f"({args.identical} identical), {args.hostile} hostile visitor(s) on a {os.cpu_count()}-core machine, "
          f"loopback")
    print(f"{'action':<38}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'errors':>8}")
    for kind in sorted(set(stats.times) | set(stats.errors)):
        ts = [1000 * t for t in stats.times.get(kind, [])]
        errors = len(stats.errors.get(kind, []))
        row = (f"{pct(ts, .5):9.0f}{pct(ts, .95):9.0f}{max(ts):9.0f}" if ts else f"{'-':>9}" * 3)
        print(f"{kind:<38}{len(ts):>6}{row}{errors:>8}")
    for kind, errs in stats.errors.items():
        print(f"  first error in {kind}: {errs[0]}")
    if args.trainings:
        shown = ", ".join(f"{w:.1f}" for w in sorted(waits))
        distinct = len({0 if k < args.identical else 100 + k for k in range(args.trainings)})
        print(f"trainings: {distinct} distinct runs for {args.trainings} presses; click until the run trains (or is "
              f"joined), s: {shown or 'none started'}; {args.trainings - len(waits)} waited in line all along "
              f"(distinct runs beyond the {os.cpu_count()} workers)")
    print(f"CPU while the class ran: server {100 * server_cpu:.0f}% of one core; the whole machine "
          f"{100 * machine:.0f}% of one core ({os.cpu_count()} cores; the rest is the simulated class itself)")
    if args.hostile:
        print("hostile requests (what, HTTP status): "
              + ", ".join(f"{what} {code}: {n}" for (what, code), n in sorted(answers.items())))
    if memory:
        print(f"server memory (process + work children): idle {idle:.0f} MB, peak {max(memory):.0f} MB, "
              f"median {statistics.median(memory):.0f} MB")


if __name__ == "__main__":
    main()
