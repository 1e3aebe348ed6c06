"""bench_labels.py and bench_train.py under two Python environments, side by side: for a change of pinned
versions (torch 2.13.0+cpu -> 2.11.0, the newest ZeroGPU runs), on the same checkout and machine, in one script.

    python benchmarks/compare_envs.py OLD_PYTHON [NEW_PYTHON] [--rounds 2] [--skip-demo]

Each round runs every benchmark in both environments, the old one first in odd rounds and the new one first in
even rounds (so the machine's drift falls on both); each output line is printed with its settings, and under it each measurement that differs:
old | new | new / old. NEW_PYTHON defaults to this interpreter.
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = [("bench_labels.py", []), ("bench_train.py", [])]
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def run(python, bench, args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    out = subprocess.run([python, os.path.join(ROOT, "benchmarks", bench), *args], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=1800)
    if out.returncode:
        sys.exit(f"{bench} failed under {python}:\n{out.stderr[-2000:]}")
    return out.stdout


def version(python):
    return subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                          text=True).stdout.strip()


def figures(text):
    """(line with its numbers replaced by {}, [numbers]) for every line that has numbers."""
    out = []
    for line in text.splitlines():
        nums = [float(n.replace(",", "")) for n in NUMBER.findall(line)]
        if nums:
            out.append((NUMBER.sub("{}", line), nums))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new", nargs="?", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-demo", action="store_true", help="bench_train without the page-path demo (faster)")
    args = ap.parse_args()
    names = {args.old: f"torch {version(args.old)}", args.new: f"torch {version(args.new)}"}
    print(f"old: {args.old} ({names[args.old]})\nnew: {args.new} ({names[args.new]})")
    for bench, extra in BENCHES:
        if bench == "bench_train.py" and args.skip_demo:
            extra = [*extra, "--no-demo"]
        for r in range(args.rounds):
            if r % 2 == 0:  # alternate which goes first: the machine's drift falls on both
                old, new = run(args.old, bench, extra), run(args.new, bench, extra)
            else:
                new, old = run(args.new, bench, extra), run(args.old, bench, extra)
            print(f"\n=== {bench}, round {r + 1}: {names[args.old]} | {names[args.new]} | new/old")
            for (shape, a), (_, b) in zip(figures(old), figures(new)):
                # the settings (the same number in both) are printed in the line; the measurements beside it
                line = shape.format(*[f"{x:g}" if x == y else "#" for x, y in zip(a, b)])
                measured = [f"{x:g} | {y:g} | {y / x:.2f}x" for x, y in zip(a, b) if x != y and x]
                print(line.strip() + ("\n    " + "; ".join(measured) if measured else ""))


if __name__ == "__main__":
    main()
