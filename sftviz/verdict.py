"""What a paired training showed, in words: the one-line verdict from the fair (held-out) comparison, the
caveats that go with it, and what each generated answer did. The page (sftviz.live) and `python -m sftviz train`
say the same sentences. No gradio, no torch here.

>>> curves = {"whole": {"answer": [(0, 5.0), (100, 1.10)], "prompt": [(0, 5.0), (100, 0.4)]},
...           "completion": {"answer": [(0, 5.0), (100, 1.02)], "prompt": [(0, 5.0), (100, 10.9)]}}
>>> verdict(curves)
'Held-out answer loss (lower is better): answer only 1.02 vs whole text 1.10 nats/token: answer only is lower.'
"""

import math

from .plan import run_title

SMALL_DATA = 50  # fewer training examples than this: the held-out losses are noise more than signal
SAME = 0.02  # answer losses closer than this (nats/token) are "about the same"


def last(points):
    """The last finite value of a curve (None when there is none: a diverged run's NaN is no score)."""
    return next((v for _, v in reversed(points) if v is not None and math.isfinite(v)), None)


def verdict(curves):
    """One line from the fair plot: the held-out answer loss of each run, which is lower ("" without two runs)."""
    answer = {m: last(c["answer"]) for m, c in curves.items() if last(c["answer"]) is not None}
    if len(answer) < 2:
        return ""
    ranked = sorted(answer, key=answer.get)
    best = ranked[0]
    numbers = " vs ".join(f"{run_title(m)} {answer[m]:.2f}" for m in ranked)
    close = [m for m in ranked if answer[m] - answer[best] < SAME]  # within SAME of the best: a tie
    if len(close) == len(ranked):
        said = "about the same"
    elif len(close) > 1:
        said = f"{' and '.join(run_title(m) for m in close)} about the same, lower than the rest"
    else:
        said = f"{run_title(best)} is {'lower' if len(ranked) == 2 else 'lowest'}"
    return f"Held-out answer loss (lower is better): {numbers} nats/token: {said}."


def caveats(curves, examples, model="tiny"):
    """The sentences that go with the verdict: answer only never learns the prompts (which are given at
    inference), a tiny model from scratch knows no facts, and a small dataset makes the curves noise."""
    out = []
    prompt = {m: last(c["prompt"]) for m, c in curves.items()}
    if prompt.get("whole") is not None and any(prompt.get(m) is not None for m in ("completion", "assistant")):
        answer_run = "completion" if prompt.get("completion") is not None else "assistant"
        out.append(f"{run_title(answer_run).capitalize()} does not learn to write the prompts (held-out prompt loss "
                   f"{prompt[answer_run]:.2f} vs {prompt['whole']:.2f}): at inference the prompt is given, so the "
                   f"answer's loss is what counts.")
    if model == "tiny":
        out.append("A tiny model trained from scratch cannot know facts it never saw: judge the answers' format "
                   "and whether they stop, not whether they are right.")
    train_n, held_n = examples.get("train", 0), examples.get("held_out", 0)
    if train_n < SMALL_DATA:
        out.append(f"⚠ Only {train_n} training examples ({held_n} held out): the held-out losses are noisy and can "
                   f"rise as the model memorises its few examples; a difference between the runs means little here.")
    return out


def outcome(out, reference):
    """What one generated answer (train.PairedTraining.results' record) did, as short flags: the reference answer
    or not, stops at EOS (said only of an answer with something before its EOS), writes the next turn."""
    if out["empty"]:
        flags = ["✗ empty" + (": EOS at once" if out["stopped_at_eos"] else "")]
    else:
        flags = ["✓ the reference answer" if out["text"].strip() == reference.strip() else "✗ not the reference",
                 "✓ stops at EOS" if out["stopped_at_eos"] else "✗ no EOS: never stops"]
    if out["next_turn"]:
        flags.append("✗ writes the next turn")
    return flags
