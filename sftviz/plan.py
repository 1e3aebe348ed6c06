"""The plan of a paired training, without torch: the settings (PRESETS, TrainConfig), the runs and their titles,
and what every run shares: the labels of each mode, the held-out split, the compact vocabulary, the batch
order and the prompts to generate from. sftviz.engine trains on a plan; sftviz.train runs it.
"""

import os
import math
import random
from dataclasses import dataclass, field

from .labels import IGNORE, MODES, Options, TRLRefusal, answer_mode, prepare, row_type

# The presets: name (the CLI's --preset, the page's API) -> settings. Their page labels are in PRESET_LABELS.
PRESETS = {
    "quick": dict(steps=240, batch_size=8, learning_rate=1e-3, max_length=128, hidden_size=128, num_layers=2,
                  eval_every=20, max_examples=400),
    "longer": dict(steps=1000, batch_size=8, learning_rate=1e-3, max_length=256, hidden_size=192, num_layers=3,
                   eval_every=25, max_examples=5000),
    # a class's (the lesson's): the prompt loss splits between the runs within ~20-40 steps, so a held-out point
    # every 10 steps on 16 examples shows it within seconds (benchmarks/bench_train.py --class-only measures it)
    "class": dict(steps=80, batch_size=8, learning_rate=2e-3, max_length=128, hidden_size=128, num_layers=2,
                  eval_every=10, max_examples=400, n_eval=16, n_generate=2),
}
PRESET_LABELS = {"quick": "Quick demo (~10-30 s)", "longer": "Longer (minutes)", "class": "Class (~10 s)"}


def preset_name(value):
    """A preset's name from its name, its page label or the start of its label; anything else as it is (for
    TrainConfig.preset to refuse)."""
    value = (value or "").strip()
    return next((name for name, label in PRESET_LABELS.items() if value and (value == name or label.startswith(value))),
                value)


@dataclass
class TrainConfig:
    modes: tuple = ("whole", "completion")
    steps: int = 150
    batch_size: int = 8
    learning_rate: float = 3e-3
    max_length: int = 128
    hidden_size: int = 128
    num_layers: int = 2
    eval_every: int = 10
    max_examples: int = 400  # the first N examples of the dataset (fewer distinct tokens: a faster model)
    n_eval: int = 32  # held-out examples
    n_generate: int = 4  # held-out prompts to generate from after training
    max_new_tokens: int = 24
    seed: int = 0
    model: str = "tiny"  # or a local directory / Hub id of a pretrained causal LM
    threads: int = 1  # torch threads of the training (all runs advance together, in one step)
    prompt_weight: float | None = None  # a third run: prompt tokens weighted this, answer tokens 1 (not TRL 1.16)

    @classmethod
    def preset(cls, name, **overrides):
        if name not in PRESETS:
            raise TrainError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def __post_init__(self):
        """The same checks for the page and the CLI: whole numbers in range, a finite learning rate."""
        for name, low, high in LIMITS:
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
                setattr(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise TrainError(f"{name.replace('_', ' ')} must be a whole number from {low:,} to {high:,}, "
                                 f"not {value!r}")
        w = self.prompt_weight
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)
                              or not 0 <= w <= 1):
            raise TrainError(f"the prompt loss weight must be a number from 0 to 1, not {w!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= 1:
            raise TrainError(f"the learning rate must be a number above 0 and at most 1, not {lr!r}")


LIMITS = (  # (field, lowest, highest): what a CPU run can finish, and what torch and Python's random accept
    ("steps", 1, 20_000), ("batch_size", 1, 256), ("max_length", 8, 8192), ("hidden_size", 8, 4096),
    ("num_layers", 1, 64), ("eval_every", 1, 20_000), ("max_examples", 8, 100_000), ("n_eval", 2, 1000),
    ("n_generate", 0, 64), ("max_new_tokens", 1, 1024), ("seed", 0, 2**32 - 1), ("threads", 1, 64),
)


WEIGHTED = "weighted"  # the run with prompt tokens weighted prompt_weight: not a TRL 1.16 option
WEIGHTED_TITLE = "prompt weight w"


def run_title(name):
    """A run's short name on plots and results: its mode's title, or the weighted run's."""
    return WEIGHTED_TITLE if name == WEIGHTED else MODES[name].title


MIN_EXAMPLES = 8  # a batch's worth, so there is something to train on and something to hold out
EVAL_BATCH = 16  # held-out examples scored per forward pass


class TrainError(ValueError):
    """The data or options cannot be trained on; the message says why."""


@dataclass
class Plan:
    """Everything shared by the runs: the split, the batches, the compact vocabulary, the labels per mode."""

    config: TrainConfig
    train_ids: list  # per training example: input_ids (compact)
    train_labels: dict  # mode -> per training example labels (compact ids or -100)
    answer_labels: list  # per training example, the answer mode's labels (the weighted run weighs them 1)
    eval_ids: list
    eval_answer: list  # per eval example: positions whose token is an answer token (scored, t >= 1)
    eval_prompt: list  # per eval example: positions of prompt tokens (t >= 1)
    batches: list  # step -> list of training example indices (same for every run)
    vocab: list  # compact id -> original token id (None when the model uses the real vocabulary)
    pad_id: int
    eos_id: int
    gen_prompts: list  # compact prompt ids for generation
    gen_references: list  # reference answers (text)
    notes: list = field(default_factory=list)


def resolve_modes(rows, chosen):
    """The modes to train, as the page and the CLI both offer them: "completion" (answer only) means the
    assistant turns for chat data (labels.answer_mode); a mode that is not trainable is refused."""
    for m in chosen:
        Options(m)  # an unknown mode is refused with the same words everywhere
        if not MODES[m].trainable:
            raise TrainError(f"mode {m!r} is not offered for training; choose from "
                             f"{', '.join(k for k, v in MODES.items() if v.trainable)}")
    modes = tuple(dict.fromkeys(answer_mode(rows) if m == "completion" else m for m in chosen))
    if not modes:
        raise TrainError("choose at least one mode to train")
    return modes


def make_plan(rows, tok, config):
    """Everything the runs share, in named steps: labels per mode, which examples can be used, the
    held-out split, the compact vocabulary, the batch order and the prompts to generate from."""
    modes = list(dict.fromkeys(config.modes))
    if not modes:
        raise TrainError("choose at least one mode to train")
    rows = rows[:config.max_examples]
    if len(rows) < MIN_EXAMPLES:
        raise TrainError(f"need at least {MIN_EXAMPLES} examples to train and hold some out, got {len(rows)}")
    rng = random.Random(config.seed)
    ans_mode = answer_mode(rows)
    preps = label_every_mode(rows, tok, config, modes, ans_mode)
    whole = preps["whole"].sequences
    answer = preps[ans_mode].sequences if ans_mode in preps else whole

    notes = []
    if row_type(rows[0]) == "language_modeling":
        notes.append("This data has no prompt/answer split: answer loss = loss on every token.")
    eligible = usable_examples(preps, answer)
    if len(eligible) < len(rows):
        notes.append(f"{len(rows) - len(eligible)} examples left out: no answer token within max_length "
                     f"{config.max_length} (TRL would drop them in answer-only mode).")
    if len(eligible) < MIN_EXAMPLES:
        raise TrainError(f"only {len(eligible)} examples have an answer within max_length {config.max_length}")
    eval_idx, train_idx = held_out_split(eligible, config.n_eval, rng)

    pad_orig = preps["whole"].pad_token_id
    vocab = compact_vocabulary(whole, pad_orig, tok.eos_token_id) if config.model == "tiny" else None
    if vocab:
        notes.append(f"The tiny model's vocabulary: the {len(vocab)} token ids that occur in this data "
                     f"(of the tokenizer's {len(tok)}), remapped to 0..{len(vocab) - 1}.")
    to_c = {t: i for i, t in enumerate(vocab)} if vocab else None

    def c(ids):  # original ids -> the model's ids
        return [to_c[t] for t in ids] if to_c else list(ids)

    def c_labels(labels):
        return [IGNORE if t == IGNORE else to_c[t] for t in labels] if to_c else list(labels)

    train_ids = [c(whole[i].input_ids) for i in train_idx]
    train_labels = {m: [c_labels(preps[m].sequences[i].labels) for i in train_idx] for m in modes}
    answer_labels = [c_labels(answer[i].labels) for i in train_idx]
    eval_ids = [c(whole[i].input_ids) for i in eval_idx]
    eval_answer, eval_prompt = held_out_positions(whole, answer, eval_idx)
    gen_prompts, refs = [], []
    for i in eval_idx[:config.n_generate]:
        prompt, reference = first_answer(whole[i].input_ids, answer[i].labels)
        gen_prompts.append(c(prompt))
        refs.append(tok.decode(reference))
    return Plan(config, train_ids, train_labels, answer_labels, eval_ids, eval_answer, eval_prompt,
                batch_schedule(len(train_idx), config, rng), vocab,
                to_c[pad_orig] if to_c else pad_orig, to_c[tok.eos_token_id] if to_c else tok.eos_token_id,
                gen_prompts, refs, notes)


def label_every_mode(rows, tok, config, modes, ans_mode):
    """labels.prepare for each trained mode, plus whole text and the answer mode (the held-out metrics
    need both). A refusal matters only for a mode that is trained."""
    preps = {}
    for m in dict.fromkeys([*modes, "whole", ans_mode]):
        try:
            preps[m] = prepare(rows, tok, Options(m, config.max_length))
        except TRLRefusal as e:
            if m in modes:
                raise TrainError(f"mode {m!r}: {e}") from None
    whole = preps["whole"].sequences
    for m in modes:  # the same inputs in every mode: only the labels differ
        assert all(a.input_ids == b.input_ids for a, b in zip(preps[m].sequences, whole)), m
    return preps


def usable_examples(preps, answer):
    """Examples no mode drops, with at least one answer token scored."""
    return [i for i in range(len(answer)) if not any(p.sequences[i].dropped for p in preps.values())
            and answer[i].num_scored > 0]


def held_out_split(eligible, n_eval, rng):
    """(eval indices, train indices): a seeded shuffle, a fifth at most held out (and at least 2)."""
    eligible = list(eligible)
    rng.shuffle(eligible)
    n = min(n_eval, max(2, len(eligible) // 5))
    return eligible[:n], eligible[n:]


def compact_vocabulary(sequences, pad_id, eos_id):
    """The token ids that occur in the data plus pad and EOS, sorted: the tiny model's output layer only
    needs these, and it dominates the CPU time (a 150k vocabulary would cost 50x more per step)."""
    used = {t for s in sequences for t in s.input_ids} | {pad_id, eos_id}
    return sorted(t for t in used if t is not None)


def held_out_positions(whole, answer, eval_idx):
    """Per held-out example, the positions (t >= 1, so they are predicted) of answer tokens and of the
    others (prompt): the same positions score every run."""
    eval_answer, eval_prompt = [], []
    for i in eval_idx:
        a = {t for t in range(1, len(answer[i].labels)) if answer[i].labels[t] != IGNORE}
        eval_answer.append(sorted(a))
        eval_prompt.append([t for t in range(1, len(whole[i].labels)) if t not in a])
    return eval_answer, eval_prompt


def batch_schedule(n_train, config, rng):
    """step -> training example indices: one shuffled pass after another, the same for every run."""
    order, batches = [], []
    for _ in range(config.steps):
        if len(order) < config.batch_size:
            epoch = list(range(n_train))
            rng.shuffle(epoch)
            order += epoch
        batches.append(order[:config.batch_size])
        order = order[config.batch_size:]
    return batches


def first_answer(input_ids, labels):
    """(the tokens before the first answer, the first answer's tokens) of one example."""
    start = end = min(t for t in range(1, len(labels)) if labels[t] != IGNORE)
    while end < len(labels) and labels[end] != IGNORE:
        end += 1
    return input_ids[:start], labels[start:end]


PRETRAINED_LR = 2e-5  # SFTConfig's default learning rate: a pretrained model's (the presets' are the tiny model's)

# Seconds one training step of one run of a pretrained model takes on this machine's CPU, per million parameters,
# at a batch of 8 x 128 tokens (SmolLM2-135M, measured with benchmarks/bench_model_loss.py --train-step on 2 cores):
# the page's refusal and the CLI's estimate scale it by the model's size, the batch's tokens and the runs.
CPU_STEP_S_PER_M = float(os.environ.get("SFTVIZ_CPU_STEP_S_PER_M", 0.05))


def cpu_estimate(config, params, row_tokens=None):
    """(seconds, seconds per step) a paired training of a `params`-parameter model would take on the CPU, every step
    of every run; `row_tokens`: the data's typical row length (a batch is padded to its longest), else max_length."""
    tokens = config.batch_size * min(config.max_length, row_tokens or config.max_length)
    per_step = CPU_STEP_S_PER_M * params / 1e6 * tokens / (8 * 128) * len(run_names(config))
    return per_step * config.steps, per_step


def typical_length(lengths, config):
    """The 90th percentile of the rows' token counts, at most max_length (a batch is padded to its longest)."""
    lengths = sorted(min(n, config.max_length) for n in lengths)
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else config.max_length


def duration(seconds):
    """A duration in words: "40 s", "12 min", "4.7 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def run_names(config):
    """The runs of a comparison: its modes, then the weighted run when a prompt weight is set."""
    return list(dict.fromkeys(config.modes)) + ([WEIGHTED] if config.prompt_weight is not None else [])
