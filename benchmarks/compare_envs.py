"""Benchmarks old against new, side by side, in one script: two Python environments (a change of pinned
versions, e.g. torch 2.13.0+cpu -> 2.11.0) on the same checkout, or two checkouts (a refactoring: --old-dir, a
`git worktree` of the old commit) with the same environment.

    python benchmarks/compare_envs.py OLD_PYTHON [NEW_PYTHON] [--rounds 2] [--skip-demo]
    python benchmarks/compare_envs.py "$(which python)" --old-dir /tmp/old --benches labels,train,doctor

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
BENCHES = {"labels": ("bench_labels.py", []), "train": ("bench_train.py", []),
           "doctor": ("bench_doctor.py", ["--rows", "100000", "--sizes", "100000", "--trl-rows", "5000"])}
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def run(python, bench, args, root=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    out = subprocess.run([python, os.path.join(root, "benchmarks", bench), *args], capture_output=True, text=True,
                         cwd=root, env=env, timeout=1800)
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
    ap.add_argument("--old-dir", default=ROOT, help="the old code's checkout (default: this one)")
    ap.add_argument("--benches", default="labels,train", help=f"from {', '.join(BENCHES)}")
    args = ap.parse_args()
    old_name, new_name = f"torch {version(args.old)}", f"torch {version(args.new)}"
    if args.old_dir != ROOT:
        old_name, new_name = f"old code ({old_name})", f"new code ({new_name})"
    names = {"old": old_name, "new": new_name}
    print(f"old: {args.old} in {args.old_dir} ({old_name})\nnew: {args.new} in {ROOT} ({new_name})")
    for key in args.benches.split(","):
        bench, extra = BENCHES[key]
        if bench == "bench_train.py" and args.skip_demo:
            extra = [*extra, "--no-demo"]
        for r in range(args.rounds):
            if r % 2 == 0:  # alternate which goes first: the machine's drift falls on both
                old, new = run(args.old, bench, extra, args.old_dir), run(args.new, bench, extra)
            else:
                new, old = run(args.new, bench, extra), run(args.old, bench, extra, args.old_dir)
            print(f"\n=== {bench}, round {r + 1}: {names['old']} | {names['new']} | new/old")
            for (shape, a), (_, b) in zip(figures(old), figures(new)):
                # the settings (the same number in both) are printed in the line; the measurements beside it
                line = shape.format(*[f"{x:g}" if x == y else "#" for x, y in zip(a, b)])
                measured = [f"{x:g} | {y:g} | {y / x:.2f}x" for x, y in zip(a, b) if x != y and x]
                print(line.strip() + ("\n    " + "; ".join(measured) if measured else ""))


if __name__ == "__main__":
    main()
