"""Paired training runs: the same tiny model trained twice (or three times), differing only in labels.

Every run starts from bit-identical weights and sees the same batches in the same order; only the
labels differ (whole text vs answer only vs assistant turns only, as `labels.prepare` builds them
for TRL), plus an optional run that weighs prompt tokens w and answer tokens 1 (not a TRL option: the
middle ground studied by Huerta-Enochian & Ko 2024 and Shi et al. 2024). The runs' parameters are
stacked and advance in one step (`Runs`). Two numbers per run:

  * train_loss: the run's own objective, `model(input_ids, attention_mask, labels).loss`, the mean
    over the tokens that run trains on (TRL's per-token averaging); the weighted run's is the weighted
    mean. Runs average over different tokens, so these curves are NOT comparable across runs.
  * eval_answer_loss / eval_prompt_loss: the same held-out examples scored the same way for every
    run, on answer tokens and on prompt tokens. These ARE comparable.

The tiny model only models the token ids that occur in the data (remapped to a compact vocabulary),
so a 32k-150k tokenizer costs no more than a small one: the output layer dominates CPU time.
"""

import copy
import math
import os
import queue
import random
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field

from . import hub, one_line, zerogpu
from .labels import IGNORE, MODES, Options, TRLRefusal, answer_mode, collate, prepare, row_type

PRESETS = {
    "quick": dict(steps=240, batch_size=8, learning_rate=1e-3, max_length=128, hidden_size=128, num_layers=2,
                  eval_every=20, max_examples=400),
    "longer": dict(steps=1000, batch_size=8, learning_rate=1e-3, max_length=256, hidden_size=192, num_layers=3,
                   eval_every=25, max_examples=5000),
}


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


# torch notes that SDPA has no vmap batching rule yet (it loops over the runs): known, measured, not news
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")

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


MAX_MODEL_PARAMS = int(float(os.environ.get("SFTVIZ_MAX_MODEL_PARAMS", 150e6)))  # the page's limit


def check_model(name, where="any", max_params=None):
    """Before any weights are fetched: the model name is allowed here (where="hub": a Hub id, never a
    folder on the server), and its size, counted from its config alone, is at most `max_params`."""
    name = (name or "tiny").strip()
    if name == "tiny":
        return name
    if where == "hub":
        hub.check_id(name, "model", TrainError)
    if max_params is None:
        return name
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        try:
            config = AutoConfig.from_pretrained(name, trust_remote_code=False, local_files_only=True)
        except Exception:
            if os.path.isdir(name) or not hub.reachable():
                raise
            config = AutoConfig.from_pretrained(name, trust_remote_code=False)
        with torch.device("meta"):  # the shapes without the memory
            n = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    except Exception as e:
        if where == "hub":
            raise TrainError(hub.unavailable("model", name)) from None
        raise TrainError(f"cannot load model {name!r}: {one_line(e)[:200]}") from None
    if n > max_params:
        raise TrainError(f"model {name!r} has {n / 1e6:,.0f}M parameters; this page trains models of at most "
                         f"{max_params / 1e6:,.0f}M (SFTVIZ_MAX_MODEL_PARAMS)")
    return name


def build_model(plan):
    """The model every run starts from (seeded): a small Llama, or a pretrained causal LM."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    cfg = plan.config
    torch.manual_seed(cfg.seed)
    if cfg.model != "tiny":
        try:
            return AutoModelForCausalLM.from_pretrained(cfg.model, trust_remote_code=False)
        except Exception as e:
            raise TrainError(f"cannot load model {cfg.model!r}: {one_line(e)[:200]}") from None
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(plan.vocab), hidden_size=cfg.hidden_size, intermediate_size=2 * cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=max(cfg.max_length, 64), pad_token_id=plan.pad_id, eos_token_id=plan.eos_id,
        bos_token_id=None, tie_word_embeddings=True))


def tensors(ids_list, labels_list, pad_id):
    """Right-padded batch tensors, as TRL's collator pads (labels -100, attention_mask 0 on padding)."""
    import torch

    from .labels import Sequence

    seqs = collate([Sequence(list(i), list(lab), None, None, [0] * len(i)) for i, lab in zip(ids_list, labels_list)],
                   pad_id)
    return (torch.tensor([s.input_ids for s in seqs]), torch.tensor([s.attention_mask for s in seqs]),
            torch.tensor([s.labels for s in seqs]))


def token_losses(model, ids, device="cpu"):
    """Per-position loss of predicting token t from tokens < t (None at position 0)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        x = torch.tensor([ids], device=device)
        logits = model(input_ids=x).logits.float()
        nll = F.cross_entropy(logits[0, :-1], x[0, 1:], reduction="none").cpu().tolist()
    model.train()
    return [None] + nll


def generate(model, plan, prompt, device="cpu"):
    """Greedy continuation until EOS or max_new_tokens; returns (compact ids, stopped_at_eos)."""
    import torch

    model.eval()
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(plan.config.max_new_tokens):
            window = ids[-plan.config.max_length:]
            nxt = int(model(input_ids=torch.tensor([window], device=device)).logits[0, -1].argmax())
            ids.append(nxt)
            if nxt == plan.eos_id:
                break
    model.train()
    out = ids[len(prompt):]
    return out, bool(out) and out[-1] == plan.eos_id


class Runs:
    """Every run of a comparison as one model: the runs' parameters stacked along a first axis and evaluated
    in one call (PyTorch's model-ensembling recipe: torch.func.stack_module_state + functional_call + vmap),
    so one step advances every run. Each run keeps its own parameters, gradients and AdamW state (AdamW is
    elementwise, so one optimizer over the stacked tensors is one optimizer per run) and its own gradient
    clipping. A run's loss is its own model's: the mean over the tokens it trains on, or for the weighted
    run the weighted mean. Every run starts from the same weights and sees the same batch."""

    def __init__(self, model, names, device, learning_rate):
        import torch
        from torch.func import stack_module_state

        self.names, self.device = list(names), device
        model = model.to(device)
        self.template = model  # its forward is called with each run's parameters
        self.params, self.buffers = stack_module_state([copy.deepcopy(model) for _ in self.names])
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=learning_rate, weight_decay=0.0,
                                           fused=device in ("cpu", "cuda"))
        self.batched = True  # False for a model whose forward vmap cannot batch: then the runs go one by one
        self.head = self._head_name(model)

    def _head_name(self, model):
        """For a Llama (the tiny model among them), whose logits are just lm_head(last hidden state): the stacked
        parameter of its output layer (the input embeddings when tied), so a run's loss can compute logits
        only where it has a weight. None for any other model: it goes through its own forward."""
        from transformers import LlamaForCausalLM

        if type(model) is not LlamaForCausalLM or model.lm_head.bias is not None:
            return None
        head = model.lm_head.weight
        return next((n for n, p in model.named_parameters(remove_duplicate=False) if p is head and n in self.params),
                    None)

    def over_runs(self, one):
        """one(params, buffers) of every run, stacked: in one call with vmap, or run by run for a model whose
        forward vmap cannot batch (e.g. a pretrained model with an op vmap has no rule for)."""
        import torch
        from torch.func import vmap

        if self.batched:
            try:
                return vmap(one, randomness="different")(self.params, self.buffers)  # dropout: a mask per run
            except Exception:  # noqa: BLE001
                self.batched = False
        return torch.stack([one({k: v[r] for k, v in self.params.items()}, {k: v[r] for k, v in self.buffers.items()})
                            for r in range(len(self.names))])

    def logits(self, x, attention_mask):
        """[runs, batch, positions, vocab]: every run's logits for the same inputs."""
        from torch.func import functional_call

        return self.over_runs(lambda params, buffers: functional_call(
            self.template, (params, buffers), (x,), {"attention_mask": attention_mask}).logits)

    def hidden(self, x, attention_mask):
        """[runs, batch, positions, hidden]: every run's last hidden states (a Llama's, before lm_head)."""
        from torch.func import functional_call

        def one(params, buffers):
            inner = tuple({k[6:]: v for k, v in d.items() if k.startswith("model.")} for d in (params, buffers))
            return functional_call(self.template.model, inner, (x,), {"attention_mask": attention_mask}) \
                .last_hidden_state

        return self.over_runs(one)

    def loss(self, x, attention_mask, weights):
        """Each run's loss (see losses). For a Llama, logits are computed only at the positions a run has a
        weight on: the same loss and gradient (the others are multiplied by 0), without the output layer's
        work on padding and, for an answer-only run, on the prompt (that layer is most of a tiny model's step)."""
        import torch
        import torch.nn.functional as F

        if self.head is None:
            return self.losses(self.logits(x, attention_mask), x, weights)
        h = self.hidden(x, attention_mask)[:, :, :-1]  # the output at t-1 predicts token t
        targets, w = x[:, 1:], weights[:, :, 1:]
        out = []
        for r in range(len(self.names)):
            keep = w[r] > 0
            logits = h[r][keep] @ self.params[self.head][r].T
            nll = F.cross_entropy(logits.float(), targets[keep], reduction="none")
            out.append((nll * w[r][keep]).sum() / w[r].sum())
        return torch.stack(out)

    def losses(self, logits, x, weights):
        """Per run: sum over positions t >= 1 of weight(t) * -log p(token t | tokens < t), divided by the
        sum of the weights. With weights 1 on labelled tokens and 0 elsewhere this is exactly
        model(input_ids, labels=labels).loss (the shift, the -100 handling, the per-token mean)."""
        import torch.nn.functional as F

        runs, batch, n, vocab = logits.shape
        targets = x[:, 1:].expand(runs, batch, n - 1)
        nll = F.cross_entropy(logits[:, :, :-1].float().reshape(-1, vocab), targets.reshape(-1),
                              reduction="none").view(runs, batch, n - 1)
        w = weights[:, :, 1:]
        return (nll * w).sum((1, 2)) / w.sum((1, 2))

    def step(self, x, attention_mask, weights, max_grad_norm=1.0):
        """One optimizer step of every run; returns each run's loss."""
        loss = self.loss(x, attention_mask, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # the runs share no parameter: each gets the gradient of its own loss
        self.clip(max_grad_norm)
        self.optimizer.step()
        return loss.detach().tolist()

    def clip(self, max_norm):
        """torch.nn.utils.clip_grad_norm_ (Trainer's max_grad_norm=1.0), for each run on its own gradients."""
        import torch

        grads = [p.grad for p in self.params.values() if p.grad is not None]
        runs = len(self.names)
        norms = torch.stack([g.reshape(runs, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(runs, *[1] * (g.dim() - 1)))

    def model(self, r):
        """Run r as an ordinary model (for generation, per-token losses and the tests)."""
        m = copy.deepcopy(self.template)
        m.load_state_dict({k: v[r].detach() for k, v in self.params.items()}, strict=False)
        return m.eval()


def weights_for(plan, name, x_mask, labels, answer_labels):
    """[batch, positions] weights of one run: 1 where the run's label is set (a mode run), or 1 on answer
    tokens and plan.config.prompt_weight on the other attended tokens (the weighted run)."""
    import torch

    if name != WEIGHTED:
        return (labels != IGNORE).float()
    answer = (answer_labels != IGNORE).float()
    return answer + plan.config.prompt_weight * (1 - answer) * x_mask.float()


def evaluate_all(runs, plan, device="cpu"):
    """Per run: mean cross-entropy on held-out answer tokens and on held-out prompt tokens (the same tokens
    for every run, so these are comparable)."""
    import torch
    import torch.nn.functional as F

    k_runs = len(runs.names)
    sums, counts = torch.zeros(k_runs, 2, dtype=torch.float64), [0, 0]
    runs.template.eval()  # no dropout while scoring
    with torch.no_grad():
        for k in range(0, len(plan.eval_ids), EVAL_BATCH):
            ids = plan.eval_ids[k:k + EVAL_BATCH]
            x, am, _ = tensors(ids, ids, plan.pad_id)
            logits = runs.logits(x.to(device), am.to(device)).float()
            runs_, batch, n, vocab = logits.shape
            nll = F.cross_entropy(logits[:, :, :-1].reshape(-1, vocab), x[:, 1:].to(device).expand(runs_, batch, n - 1)
                                  .reshape(-1), reduction="none").view(runs_, batch, n - 1).cpu().double()
            for which, positions in enumerate((plan.eval_answer, plan.eval_prompt)):
                mask = torch.zeros(batch, n - 1, dtype=torch.float64)
                at = [(row, t - 1) for row, j in enumerate(range(k, k + len(ids))) for t in positions[j]]
                if at:
                    mask[tuple(zip(*at))] = 1.0  # position t is predicted by the output at t-1
                sums[:, which] += (nll * mask).sum((1, 2))
                counts[which] += int(mask.sum())
    runs.template.train()
    return [tuple(float(sums[r, c]) / counts[c] if counts[c] else None for c in (0, 1)) for r in range(k_runs)]


class PairedTraining:
    """The runs trained together, one step of every run per step, in one background thread; iterate over
    their events, stop them. Use as a context manager: leaving it stops and joins the thread (Stop button,
    closed browser tab, Ctrl-C)."""

    def __init__(self, rows, tok, config, device=None):
        import torch

        self.config, self.tok = config, tok
        self.plan = make_plan(rows, tok, config)
        self.device = device or zerogpu.device()
        base = build_model(self.plan)
        if self.plan.vocab is None and base.get_input_embeddings().num_embeddings < len(tok):
            raise TrainError("the pretrained model's vocabulary is smaller than the tokenizer's")
        self.initial_state = {k: v.clone() for k, v in base.state_dict().items()}
        self.names = run_names(config)
        # One stacked model for all runs; with more than one thread, the runs split into that many stacks,
        # stepped side by side in Python threads (independent runs use free cores better than torch's
        # intra-op threads do on models this small). Each stack has its own copy of the model to call.
        groups = max(1, min(config.threads, len(self.names)))
        torch.set_num_threads(max(1, config.threads // groups))  # process-wide
        self.groups = [Runs(copy.deepcopy(base), self.names[g::groups], self.device, config.learning_rate)
                       for g in range(groups)]
        self.runs = self.groups[0]
        self.executor = None
        self.events, self.stop_event = queue.Queue(), threading.Event()
        self.thread = threading.Thread(target=self._guarded, name="sftviz-train", daemon=True)
        self.started = None

    def __enter__(self):
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _guarded(self):
        try:
            self.train()
        except Exception as e:  # reported, never raised into another thread
            self.events.put({"record": "error", "mode": self.names[0], "error": f"{type(e).__name__}: {e}"})

    def batch(self, step):
        """The step's inputs (the same for every run) and each run's weights [runs, batch, positions]."""
        import torch

        plan = self.plan
        idx = plan.batches[step]
        ids = [plan.train_ids[i] for i in idx]
        x, am, answer = tensors(ids, [plan.answer_labels[i] for i in idx], plan.pad_id)
        weights = []
        for name in self.names:
            labels = answer if name == WEIGHTED else tensors(ids, [plan.train_labels[name][i] for i in idx],
                                                             plan.pad_id)[2]
            weights.append(weights_for(plan, name, am, labels, answer))
        d = self.device
        return x.to(d), am.to(d), torch.stack(weights).to(d)

    def each_group(self, fn):
        """fn(group) for every stack of runs, side by side when there are several; {run name: result}."""
        if len(self.groups) == 1:
            results = [fn(self.groups[0])]
        else:
            if self.executor is None:
                from concurrent.futures import ThreadPoolExecutor
                self.executor = ThreadPoolExecutor(len(self.groups), thread_name_prefix="sftviz-train-stack")
            results = list(self.executor.map(fn, self.groups))
        return {name: value for g, values in zip(self.groups, results) for name, value in zip(g.names, values)}

    def step(self, step):
        """One optimizer step of every run; {run name: loss}."""
        x, am, weights = self.batch(step)
        rows = {name: k for k, name in enumerate(self.names)}
        return self.each_group(lambda g: g.step(x, am, weights[[rows[n] for n in g.names]]))

    def run_model(self, name):
        """The run `name` as an ordinary model."""
        group = next(g for g in self.groups if name in g.names)
        return group.model(group.names.index(name))

    def emit_eval(self, step, losses=None):
        scores = self.each_group(lambda g: evaluate_all(g, self.plan, self.device))
        for name, (answer, prompt) in ((n, scores[n]) for n in self.names):
            self.events.put(dict(record="eval", mode=name, step=step,
                                 train_loss=None if losses is None else losses[name], eval_answer_loss=answer,
                                 eval_prompt_loss=prompt))

    def train(self):
        cfg = self.config
        self.emit_eval(0)
        for step in range(cfg.steps):
            if self.stop_event.is_set():
                for name in self.names:
                    self.events.put({"record": "stopped", "mode": name, "step": step})
                return
            losses = self.step(step)
            for name in self.names:
                self.events.put({"record": "train", "mode": name, "step": step + 1, "train_loss": losses[name]})
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                self.emit_eval(step + 1, losses)
        for name in self.names:
            self.events.put({"record": "done", "mode": name, "step": cfg.steps})

    def stop(self, timeout=30):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def alive(self):
        return self.thread.is_alive()

    def poll(self, timeout=0.1):
        """Events available now (waits up to `timeout` for the first)."""
        out = []
        try:
            out.append(self.events.get(timeout=timeout))
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def events_until_done(self):
        while self.alive() or not self.events.empty():
            yield from self.poll()

    def decode(self, compact_ids):
        ids = [self.plan.vocab[i] for i in compact_ids] if self.plan.vocab else compact_ids
        return self.tok.decode(ids)

    def results(self):
        """After training: greedy generations per held-out prompt, and per-token losses of one example."""
        models = {name: self.run_model(name) for name in self.names}
        gens = []
        for k, prompt in enumerate(self.plan.gen_prompts):
            item = {"prompt": self.decode(prompt), "reference": self.plan.gen_references[k], "outputs": {}}
            for name, model in models.items():
                out, eos = generate(model, self.plan, prompt, self.device)
                text = self.decode(out)
                item["outputs"][name] = {"text": text, "stopped_at_eos": eos,
                                         "next_turn": any(m in text for m in ("<|im_start|>user", "Question:",
                                                                              "<|user|>", "### Instruction"))}
            gens.append(item)
        ex = self.plan.eval_ids[0]
        ids = [self.plan.vocab[i] for i in ex] if self.plan.vocab else ex
        heat = {"input_ids": ids, "answer_positions": self.plan.eval_answer[0],
                "losses": {name: token_losses(model, ex, self.device) for name, model in models.items()}}
        return {"record": "final", "generations": gens, "heatmap": heat,
                "seconds": round(time.perf_counter() - self.started, 2), "notes": self.plan.notes,
                "config": asdict(self.config)}


def run_names(config):
    """The runs of a comparison: its modes, then the weighted run when a prompt weight is set."""
    return list(dict.fromkeys(config.modes)) + ([WEIGHTED] if config.prompt_weight is not None else [])
