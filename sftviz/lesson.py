"""The lesson at /?lesson=sft: one idea per step, each a prediction before its reveal. No gradio here.

A token step shows one example's tokens without their roles; the student clicks the tokens they think carry
loss and presses Check. The answer key is the label engine's own labels for that example (the full tool shows
the same: every step links to it, with the exact settings), so the lesson can never teach what TRL does not do.
The training step trains two runs (whole text, answer only) shown as "Run A" and "Run B" until the student picks
the answer-only one; the bug hunt's answer key is the doctor's findings on a seeded broken dataset.

A token "carries loss" when the model is trained to predict it: its label is not -100 and it is not the first
token of its sequence (position 0 is never predicted: nothing comes before it).
"""

import hashlib
from dataclasses import dataclass

from .labels import IGNORE, Options

RUNS = ("whole", "completion")  # the training step's two runs
HUNT_CHECKS = ("no_target", "answers_cut", "no_stop_token")  # the doctor's findings the bug hunt is about


@dataclass(frozen=True)
class Step:
    title: str
    idea: str  # what the step is about, before the question (Markdown)
    question: str
    why: str  # the reveal's two or three sentences
    sample: str  # a bundled sample, opened at `index` in the full tool with these options
    options: Options
    index: int = 0
    kind: str = "tokens"  # tokens: pick the tokens that carry loss | runs: pick the answer-only run of a training |
    #                       hunt: pick the broken examples (the doctor's answer key)


STEPS = (
    Step("Labels are the tokens themselves",
         "A causal language model reads the tokens left to right and, at every position, predicts the next one. "
         "TRL's `labels` are a copy of `input_ids`; the model shifts them by one itself.",
         "**Whole text** (every token is trained). Click every token the model is trained to predict.",
         "Every token carries loss except the first: the model's output at position t is scored against "
         "labels[t+1], and nothing comes before position 0, so it is never predicted.",
         "lesson_text", Options("whole")),
    Step("Whole text or only the answer?",
         "This row has a `prompt` and a `completion`. SFTConfig's default, `completion_only_loss=None`, becomes "
         "True for such data: the prompt's labels become -100.",
         "**TRL's default** for prompt/completion data. Click the tokens that carry loss.",
         "Only the completion is trained, with the EOS token TRL appends: the prompt is read as input (label "
         "-100) but never learned, because at inference the prompt is given.",
         "lesson_qa", Options("auto")),
    Step("The model must learn to stop",
         "After the completion TRL appends the tokenizer's end-of-sequence token (`<|im_end|>` here).",
         "Answer only again, another question. Which tokens carry loss? Think about how generation ends.",
         "The EOS token is trained like the answer: a model never trained to produce it keeps writing after its "
         "answer (the next question, more text) until it hits a length limit.",
         "lesson_qa", Options("auto"), 1),
    Step("What max_length cuts",
         "`max_length` truncates every example from the right, before anything is trained. Here it is 12 tokens, "
         "shorter than the prompt.",
         "With `max_length=12`, which tokens carry loss? (If you think none, press Check with nothing picked.)",
         "Nothing: the answer was cut off with the end of the row, so no label is left. TRL then drops the example "
         "entirely; with a max_length too short for your prompts, many examples train nothing.",
         "lesson_qa", Options("auto", 12)),
    Step("Chats: assistant turns only",
         "A chat is rendered by the tokenizer's chat template. `assistant_only_loss=True` trains only what the "
         "template marks as the assistant's ({% generation %} tags).",
         "**Assistant turns only**. Click the tokens that carry loss.",
         "Only the assistant's words and its end-of-turn token are trained: the user's turns, the role headers and "
         "the template's markup are context. Without this flag TRL trains every token of a chat.",
         "lesson_chat", Options("assistant")),
    Step("Packing",
         "Packing puts several short examples in one row to avoid padding. TRL's default (`bfd`) is padding-free: "
         "position ids restart at each document, and each document sees only itself.",
         "Four short documents share this row (**whole text**). Click the tokens that carry loss.",
         "Every token except the first of each document: TRL sets the first label of every packed document to "
         "-100, so no document is trained to continue the one before it.",
         "lesson_text", Options("whole", 64, True, "bfd")),
    Step("Which curve is which?",
         "Two tiny models start from the same weights and see the same batches: one trains on the **whole text**, "
         "one on the **answer only**. Every few steps both are scored on the same held-out examples: the solid "
         "line is their loss on the answer tokens, the dotted line on the prompt tokens.",
         "Press **Train both runs** and watch the curves, then pick the run you think trained on the answer only.",
         "The answer-only run never learns the prompts: its dotted line (held-out prompt loss) stays high while the "
         "whole-text run's falls. On the answers (solid) they stay close, and at inference the prompt is given, so "
         "the answer's loss is what counts; what answer only saves is the capacity spent on prompts.",
         "quiz_prompt_completion", Options("auto"), kind="runs"),
    Step("Bug hunt",
         "A real dataset hides rows that train nothing. Here are six rows as TRL labels them with `max_length=32` "
         "(the roles are shown: trained tokens in blue).",
         "Click the examples that have a problem, then Check. The doctor, which checks every row of a dataset, is "
         "the answer key.",
         "A prompt longer than `max_length` leaves no answer: TRL drops the example without an error. An answer cut "
         "by `max_length` loses its end and its EOS: the model learns to stop mid-sentence, or never. The Doctor "
         "tab finds both in a whole dataset, with a max_length that keeps 99% of examples whole.",
         "lesson_bugs", Options("auto", 32), kind="hunt"),
)


def carrying_loss(seq):
    """The positions of a sequence that carry loss: a label that is not -100, after position 0."""
    return [t for t, label in enumerate(seq.labels) if t and label != IGNORE
            and (seq.attention_mask is None or seq.attention_mask[t])]


def step_number(value):
    """A step index from the page (hostile until checked): a whole number within the lesson, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or \
            not 0 <= int(value) < len(STEPS):
        raise ValueError(f"the lesson has steps 1 to {len(STEPS)}")
    return int(value)


def picks_of(text, n):
    """The clicked positions, "3,7,9" as the page sends them, each a position of the n tokens shown."""
    if not isinstance(text, str) or len(text) > 10 * n + 10:
        raise ValueError("those are not tokens of this step")
    parts = [p for p in text.split(",") if p.strip()]
    if not all(p.strip().isdigit() and int(p) < n for p in parts):
        raise ValueError("those are not tokens of this step")
    return sorted({int(p) for p in parts})


@dataclass
class Feedback:
    found: int  # trained tokens picked
    trained: int  # trained tokens in all
    wrong: list  # picked positions that carry no loss
    missed: list  # trained positions not picked

    @property
    def right(self):
        return not self.wrong and not self.missed


def check(seq, picks):
    """How the picks compare with the labels."""
    answer = set(carrying_loss(seq))
    chosen = set(picks)
    return Feedback(len(answer & chosen), len(answer), sorted(chosen - answer), sorted(answer - chosen))


def feedback_words(feedback, seq, texts):
    """The feedback in words: "You found 3 of 3 trained tokens", then what the wrong picks are and why."""
    f = feedback
    if not f.trained:
        head = ("Right: no token carries loss here." if not f.wrong else
                f"No token carries loss here, but you picked {len(f.wrong)}.")
    else:
        head = f"You found {f.found} of {f.trained} trained tokens" + ("." if f.right else ";")
    lines = [head]
    if f.wrong:
        first = [t for t in f.wrong if t == 0]
        context = [t for t in f.wrong if t and seq.labels[t] == IGNORE]
        if context:
            lines.append(f"{len(context)} of your picks {'is' if len(context) == 1 else 'are'} context "
                         f"({_names(context, texts)}): label -100, read as input but not trained.")
        if first:
            lines.append("Position 0 is never trained: nothing comes before it to predict it from.")
    if f.missed:
        lines.append(f"Missed: {_names(f.missed, texts)}.")
    return lines


def _names(positions, texts, most=6):
    shown = ", ".join(repr(texts[t]) for t in positions[:most])
    return shown + (f" and {len(positions) - most} more" if len(positions) > most else "")


def run_letters(session):
    """Which run is "Run A" for this student's page: a coin flip per session (neighbours cannot copy a letter),
    fixed for the session. {mode: letter}."""
    flip = session is not None and hashlib.sha256(str(session).encode()).digest()[0] % 2
    return dict(zip(RUNS, "BA" if flip else "AB"))


def runs_feedback(picks, letters):
    """(right, lines) for the training step: picks are 0 (Run A) and/or 1 (Run B)."""
    answer = "AB".index(letters["completion"])
    if picks == [answer]:
        return True, [f"Right: Run {letters['completion']} trained on the answer only."]
    if not picks:
        return False, ["Pick the run you think trained on the answer only, then Check."]
    return False, [f"Not quite: Run {letters['completion']} trained on the answer only, and Run {letters['whole']} "
                   f"on the whole text."]


def broken_examples(findings):
    """{example index: the doctor's titles for it}: the bug hunt's answer key."""
    broken = {}
    for f in findings:
        if f.check in HUNT_CHECKS:
            for e in f.examples:
                broken.setdefault(e["index"], []).append(f.title)
    return broken


def hunt_feedback(picks, broken):
    """(right, lines) for the bug hunt."""
    found, wrong = [k for k in picks if k in broken], [k for k in picks if k not in broken]
    missed = sorted(set(broken) - set(picks))
    lines = [f"You found {len(found)} of {len(broken)} broken examples" + ("." if not wrong and not missed else ";")]
    if wrong:
        lines.append(f"{_examples(wrong)} {'is' if len(wrong) == 1 else 'are'} fine: the answer is trained, with "
                     f"its EOS.")
    if missed:
        lines.append(f"Missed: {_examples(missed)}.")
    return not wrong and not missed, lines


def _examples(indexes):
    return ", ".join(f"example {k + 1}" for k in indexes)
