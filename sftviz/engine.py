"""The torch side of a paired training: the model every run starts from, the runs' stacked parameters stepped
together (Runs), the held-out evaluation and the generations. Every function reads a sftviz.plan.Plan.
"""

import copy
import os
import warnings

from . import bounded, hub, one_line, quoted
from .labels import collate
from .plan import EVAL_BATCH, IGNORE, WEIGHTED, TrainError

# torch notes that SDPA has no vmap batching rule yet (it loops over the runs): known, measured, not news
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")

MAX_MODEL_PARAMS = int(float(os.environ.get("SFTVIZ_MAX_MODEL_PARAMS", 150e6)))  # the page's limit


def check_model(name, where="any", max_params=None):
    """Before any weights are fetched: the model name is allowed here (where="hub": a Hub id, never a
    folder on the server), and its size, counted from its config alone, is at most `max_params`."""
    from .model_loss import NOT_INSTALLED, SMOLLM2, offline_installed

    name = (name or "tiny").strip()
    if name == "tiny":
        return name
    if name == SMOLLM2:  # the offline SmolLM2-135M-Instruct (sftviz.model_loss): within every size limit here
        if not offline_installed():
            raise TrainError(NOT_INSTALLED)
        return name
    if where == "hub":
        hub.check_id(name, "model", TrainError)
    if max_params is None:
        return name
    try:
        n = model_params(name)
    except Exception as e:
        if where == "hub":
            raise TrainError(hub.unavailable("model", name)) from None
        raise TrainError(f"cannot load model {quoted(name)}: {one_line(e)[:200]}") from None
    if n > max_params:
        raise TrainError(f"model {quoted(name)} has {n / 1e6:,.0f}M parameters; this page trains models of at most "
                         f"{max_params / 1e6:,.0f}M (SFTVIZ_MAX_MODEL_PARAMS)")
    return name


def model_params(name):
    """A pretrained model's parameter count, from its config alone (no weights fetched or loaded)."""
    from .model_loss import SMOLLM2, SMOLLM2_PARAMS

    if name == SMOLLM2:  # (its config exists only once converted)
        return SMOLLM2_PARAMS
    try:
        return _params_from_local_config(name)
    except Exception:
        if os.path.isdir(name) or not hub.reachable():
            raise
    from huggingface_hub import hf_hub_download

    hf_hub_download(name, "config.json")  # the network, outside the lock below
    return _params_from_local_config(name)


def _params_from_local_config(name):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    # The first model of its kind imports its modules here, in a web thread: no fork meanwhile (sftviz.bounded)
    with bounded.FORK_LOCK:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False, local_files_only=True)
        with torch.device("meta"):  # the shapes without the memory
            return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


def cpu_refusal(config, lengths):
    """Why a pretrained model is not trained on this CPU, in words: the time it would take (plan.cpu_estimate), from
    the rows' token counts `lengths`."""
    from .plan import cpu_estimate, duration, run_names, typical_length

    total, per_step = cpu_estimate(config, model_params(config.model), typical_length(lengths, config))
    return (f"no GPU here: {config.steps} steps of {len(run_names(config))} runs of {config.model} would take about "
            f"{duration(total)} on this CPU (~{per_step:.0f} s a step, measured: benchmarks/bench_model_loss.py "
            f"--train-step)")


def build_model(plan):
    """The model every run starts from (seeded): a small Llama, or a pretrained causal LM."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    cfg = plan.config
    torch.manual_seed(cfg.seed)
    if cfg.model != "tiny":
        from .model_loss import model_folder
        try:
            return AutoModelForCausalLM.from_pretrained(model_folder(cfg.model), trust_remote_code=False,
                                                        dtype="float32")
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
