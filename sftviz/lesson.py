"""The lesson at /?lesson=sft: one idea per step, each a prediction before its reveal. No gradio here.

A token step shows one example's tokens without their roles; the student clicks the tokens they think carry
loss and presses Check. The answer key is the label engine's own labels for that example (the full tool shows
the same: every step links to it, with the exact settings), so the lesson can never teach what TRL does not do.

A token "carries loss" when the model is trained to predict it: its label is not -100 and it is not the first
token of its sequence (position 0 is never predicted: nothing comes before it).
"""

from dataclasses import dataclass

from .labels import IGNORE, Options


@dataclass(frozen=True)
class Step:
    title: str
    idea: str  # what the step is about, before the question (Markdown)
    question: str
    why: str  # the reveal's two or three sentences
    sample: str  # a bundled sample, opened at `index` in the full tool with these options
    options: Options
    index: int = 0


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
