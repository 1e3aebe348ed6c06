"""Fork training children while this process loads the offline SmolLM2 in a thread, as the server does when a
visitor opens the Real model tab while others train: does every child finish?

    python scripts/fork_stress.py [--rounds N] [--deadline S]

Each round deletes the converted model (in a fresh cache folder), starts the page's load (model_loss.loading:
the ~20 s conversion), forks 6 short paired trainings 0.5 s apart (bounded.Child, 2 threads each, the CLI's
`train` on a bundled sample), and waits for each. It prints the children that did not finish ("budget": hung
past --deadline seconds; "died": crashed) and the total. The children forked during a first load are the ones
at risk (its first imports): before the load's slow part moved to a child of its own and the rest took
bounded.FORK_LOCK, 5 of the 18 children of three first rounds hung here (and the CI once saw a child crash with
glibc's "corrupted size vs. prev_size while consolidating"); after, 0 of 18
(three runs of --rounds 1).
"""

import argparse
import contextlib
import faulthandler
import io
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SFTVIZ_CACHE"] = tempfile.mkdtemp(prefix="sftviz-fork-stress.")

from sftviz import bounded, cli, model_loss  # noqa: E402


def training(emit):
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["train", "quiz_prompt_completion", "--steps", "15", "--json"])
    return "ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=120, help="seconds a child may take")
    args = parser.parse_args()
    faulthandler.enable()
    if not model_loss.offline_installed():
        sys.exit(model_loss.NOT_INSTALLED)
    bad = total = 0
    started = time.monotonic()
    for r in range(args.rounds):
        model_loss._loaded.clear()
        shutil.rmtree(os.path.join(os.environ["SFTVIZ_CACHE"], model_loss.FOLDER), ignore_errors=True)
        load = model_loss.loading(model_loss.SMOLLM2)
        children = []
        for _ in range(6):
            time.sleep(0.5)
            children.append(bounded.Child(training, threads=2))
        for child in children:
            kinds = [frame[0] for frame in child.frames(time.monotonic() + args.deadline)]
            child.close()
            total += 1
            if kinds[-1] != "ok":
                bad += 1
                print(f"round {r}: a child ended with {kinds[-1]!r}", flush=True)
        load.done.wait(300)
        print(f"round {r}: model {'loaded' if load.ready else load.error}, {time.monotonic() - started:.0f} s",
              flush=True)
    print(f"{bad} of {total} children did not finish")
    shutil.rmtree(os.environ["SFTVIZ_CACHE"], ignore_errors=True)


if __name__ == "__main__":
    main()
