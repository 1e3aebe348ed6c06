"""sftviz web app: wires Gradio components to sftviz.view (and sftviz.train). Run: python app.py"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import html  # noqa: E402
import re  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

import gradio as gr  # noqa: E402

from sftviz import TRL_VERSION, data, one_line, render, view  # noqa: E402
from sftviz.train import PRESETS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSS_PATH = os.path.join(HERE, "assets", "style.css")
SAMPLES = list(data.samples())
MODES = [label for label, _ in view.MODE_CHOICES]
MODE_OF = dict(view.MODE_CHOICES)
LABEL_OF = {m: label for label, m in view.MODE_CHOICES}

INTRO = f"""# sftviz — what does SFT train on?
Each token below is **context** (the model reads it, label -100, no loss), a **target** (the model is trained
to predict it from the tokens before it) or **masked** (padding: not attended). Labels are exactly what
TRL {TRL_VERSION}'s `SFTTrainer` and its collator feed the model for this data, tokenizer and options."""

EXPLAIN_LABELS = """**What is a label?** For every position, the token the model should produce there. The loss
compares the model's prediction with it. **-100** is PyTorch's "ignore" value: that position adds no loss, but
its token is still read as input. **Answer only** sets the prompt's labels to -100, so the model learns to
answer without learning to write prompts; **whole text** trains on everything."""

EXPLAIN_SHIFT = """**Why the shift?** A causal LM at position *t* sees tokens 0…t and predicts token *t+1*. So the
label stored at position *t+1* is scored using the output at *t*. The first token is never predicted (nothing
comes before it); the last position has nothing to predict. Greyed pairs carry no loss."""

EXPLAIN_PACKING = """**Packing** fills each row with several examples (documents) to avoid padding. With `bfd`,
position ids restart at every document and documents cannot see each other; with `wrapped`, text flows across
boundaries."""


def _max_length(value):
    if value in (None, ""):
        return None
    if int(value) < 1:
        raise ValueError("max_length must be a positive number of tokens (or empty for no truncation)")
    return int(value)


def _source(sample, upload, hub_id, which):
    """(dataset, config, split): the Hub box takes "ID [CONFIG [SPLIT]]", e.g. "openai/gsm8k main test"."""
    if which == "upload" and upload:
        return upload, None, "train"
    parts = (hub_id or "").split()
    if which == "hub" and parts:
        return parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else "train"
    return sample, None, "train"


def open_view(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
              strategy):
    """The page's inputs -> a (cached) view of the labelled data."""
    source, config, split = _source(sample, upload, hub_id, which)
    return view.open_view(source, tokenizer or "default", prompt_t, completion_t, MODE_OF.get(mode, "completion"),
                          _max_length(max_length), bool(packing), strategy, config, split)


def _share_query(which, sample, hub_id, tokenizer, mode, max_length, packing, strategy, index):
    if which == "upload":
        return ""  # an uploaded file cannot travel in a link; the box's placeholder says so
    q = {"tokenizer": tokenizer, "mode": MODE_OF.get(mode, "completion"), "max_length": max_length or "none",
         "i": int(index or 0)}
    if which == "hub" and hub_id:
        q["data"] = hub_id
    else:
        q["sample"] = sample
    if packing:
        q.update(packing=strategy)
    return urlencode(q)


def refresh(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
            strategy, index, progress=gr.Progress()):
    """(Re)load data + labels; everything on the page is redrawn."""
    progress(0.1, desc="Loading data and tokenizer")
    try:
        v = open_view(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
                      strategy)
        progress(0.6, desc="Building labels")
        index = max(0, min(int(index or 0), v.n - 1))
        token, shift, pack = view.example_html(v, index)
        stats_md, roles_fig, length_fig = view.stats(v)
        mapping = v.loaded.mapping
        status = view.describe(v)
    except Exception as e:  # bad input: a clear message; the page keeps working
        return (render.error_html(one_line(e)),) + (gr.skip(),) * 14
    return (f'<div class="sv-status">{_md(status)}</div>', token, shift,
            view.compare_html(v, index) if not packing else render.error_html(
                "Mode comparison is per example: turn packing off to compare."),
            pack, stats_md, roles_fig, length_fig, gr.update(value=index, maximum=max(v.n - 1, 0)),
            f"{v.n} {'packed rows' if packing else 'examples'}",
            gr.update(value=mapping.prompt if mapping else "", visible=mapping is not None),
            gr.update(value=mapping.completion if mapping else "", visible=mapping is not None),
            gr.update(visible=mapping is not None),
            gr.update(value=render.mapping_preview(v.loaded.raw[0 if packing else index],
                                                         v.loaded.rows[0 if packing else index]) if mapping else "",
                      visible=mapping is not None),
            _share_query(which, sample, hub_id, tokenizer, mode, max_length, packing, strategy, index))


def _md(text):
    """The status text's **bold** and `code` as HTML (everything else escaped)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return "".join(f"<p>{p}</p>" for p in out.split("\n\n"))


def navigate(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
             strategy, index, delta=0):
    """Only the per-example views (index moved by `delta`): fast, since loads and labels are cached."""
    try:
        v = open_view(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
                      strategy)
        index = max(0, min(int(index or 0) + delta, v.n - 1))
        token, shift, pack = view.example_html(v, index)
        compare = view.compare_html(v, index) if not packing else gr.skip()
    except Exception as e:
        return (render.error_html(one_line(e)),) + (gr.skip(),) * 5
    return (token, shift, compare, pack, index,
            _share_query(which, sample, hub_id, tokenizer, mode, max_length, packing, strategy, index))


def find(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing, strategy,
         index, query):
    try:
        v = open_view(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
                      strategy)
        return view.search(v, query, int(index or 0))
    except Exception:
        return gr.skip()


EXPLAIN_TRAIN = """**Live training.** The same tiny model is trained twice from identical weights on identical batches;
only the labels differ. The **left** plot is each run's own training loss — averaged over *different* tokens
(whole text: every token; answer only: answer tokens), so the curves are **not comparable**. The **right** plot
scores every run on the *same* held-out tokens: the answer tokens (solid) and the prompt tokens (dotted). That is
the fair comparison. Answer-only training never learns to write prompts (its prompt loss goes up), and a tiny
model trained from scratch may still gain from prompt tokens as extra signal: results depend on data and settings."""


TRAIN_MODES = {"whole": "Whole text", "completion": "Answer only (assistant turns for chats)",
               "assistant": "Assistant turns only"}


def _preset_name(label):
    return "quick" if label.startswith("Quick") else "longer"


def preset_values(label):
    p = PRESETS[_preset_name(label)]
    return p["steps"], p["learning_rate"]


def train_stream(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
                 strategy, index, preset, modes, steps, lr, seed, model="tiny"):
    """Stream both loss curves while the paired runs train; generations and heatmap at the end."""
    from sftviz.train import TrainConfig

    try:
        v = open_view(which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, False, "bfd")
        if not steps or int(steps) < 1 or int(steps) > 20000 or not lr or float(lr) <= 0:
            raise ValueError("steps must be 1-20000 and the learning rate above 0")
        chosen = view.train_modes(v.loaded.kind, [m for m in TRAIN_MODES if TRAIN_MODES[m] in (modes or [])])
        if not chosen:
            raise ValueError("choose at least one mode to train")
        cfg = TrainConfig.preset(_preset_name(preset), modes=chosen, steps=int(steps), learning_rate=float(lr),
                                 seed=int(seed or 0), model=(model or "tiny").strip())
        yield gr.skip(), '<div class="sv-summary">Preparing the runs…</div>', "", ""
        for fig, status, gens, heat in view.train_updates(v, cfg):
            yield (fig, f'<div class="sv-summary">{html.escape(status)}</div>',
                   gr.skip() if gens is None else gens, gr.skip() if heat is None else heat)
    except Exception as e:
        yield gr.skip(), render.error_html(one_line(e)), gr.skip(), gr.skip()


def from_url(request: gr.Request):
    """Restore the view from the query string (a teacher's shared link)."""
    q = dict(request.query_params) if request else {}
    which = "hub" if q.get("data") else "sample"
    sample = q.get("sample") if q.get("sample") in SAMPLES else data.DEFAULT_SAMPLE
    mode = LABEL_OF.get(q.get("mode"), LABEL_OF["completion"])
    ml = q.get("max_length", "1024")
    max_length = None if ml == "none" else int(ml) if ml.isdigit() else 1024
    strategy = q.get("packing") if q.get("packing") in ("bfd", "bfd_split", "wrapped") else "bfd"
    index = int(q["i"]) if q.get("i", "").isdigit() else 0
    return (which, sample, q.get("data", ""), q.get("tokenizer", "default"), mode, max_length,
            bool(q.get("packing")), strategy, gr.update(value=index, maximum=max(index, 1)))


def build():
    with gr.Blocks(title="sftviz — what does SFT train on?") as demo:
        which = gr.State("sample")
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="load-panel"):
                with gr.Tab("Sample"):
                    sample = gr.Dropdown(SAMPLES, value=data.DEFAULT_SAMPLE, label="Bundled sample",
                                         elem_id="sample")
                with gr.Tab("Upload"):
                    upload = gr.File(label=".jsonl .json .csv .parquet", file_types=list(data.EXTENSIONS),
                                     type="filepath", elem_id="upload")
                with gr.Tab("Hub"):
                    hub_id = gr.Textbox(label="Hub dataset: id [config [split]]", placeholder="e.g. openai/gsm8k main test",
                                        elem_id="hub-id")
                    hub_btn = gr.Button("Load from Hub", elem_id="hub-load")
                tokenizer = gr.Textbox("default", label="Tokenizer: 'default' (bundled, offline) or a Hub id",
                                       elem_id="tokenizer")
                mode = gr.Radio(MODES, value=LABEL_OF["completion"], label="What is trained (mode)", elem_id="mode")
                max_length = gr.Number(1024, label="max_length (empty = none)", precision=0,
                                       elem_id="max-length")
                with gr.Row():
                    packing = gr.Checkbox(False, label="Packing", elem_id="packing")
                    strategy = gr.Dropdown(["bfd", "bfd_split", "wrapped"], value="bfd", label="Packing strategy",
                                           elem_id="packing-strategy")
                prompt_t = gr.Textbox(label="Prompt template (Jinja, row columns as variables)", lines=3,
                                      visible=False, elem_id="prompt-template")
                completion_t = gr.Textbox(label="Completion template", lines=1, visible=False,
                                          elem_id="completion-template")
                apply_t = gr.Button("Apply template", visible=False, size="sm", elem_id="apply-template")
                preview = gr.HTML(visible=False, elem_id="template-preview")
                share = gr.Textbox(label="Link to this view (query string)", interactive=False, elem_id="share",
                                   placeholder="(an uploaded file cannot be shared by link)", buttons=["copy"])
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="status")
                with gr.Row(elem_id="nav"):
                    prev_btn = gr.Button("◀ Prev", elem_id="prev", scale=0, min_width=90)
                    index = gr.Slider(0, 1, value=0, step=1, label="Example", elem_id="example-index", scale=3)
                    count = gr.Markdown(elem_id="count")
                    next_btn = gr.Button("Next ▶", elem_id="next", scale=0, min_width=90)
                    query = gr.Textbox(placeholder="search text…", show_label=False, elem_id="search", scale=2)
                with gr.Tab("Tokens"):
                    token_view = gr.HTML(elem_id="token-view")
                    gr.Markdown(EXPLAIN_LABELS)
                with gr.Tab("Shift"):
                    shift_view = gr.HTML(elem_id="shift-view")
                    gr.Markdown(EXPLAIN_SHIFT)
                with gr.Tab("Compare modes"):
                    compare_view = gr.HTML(elem_id="mode-compare")
                with gr.Tab("Packing"):
                    packing_view = gr.HTML("<p>Turn packing on to see packed rows.</p>", elem_id="packing-view")
                    gr.Markdown(EXPLAIN_PACKING)
                with gr.Tab("Train: whole vs answer", elem_id="train-tab"):
                    with gr.Row():
                        preset = gr.Radio(["Quick demo (~10-30 s)", "Longer (minutes)"],
                                          value="Quick demo (~10-30 s)", label="Preset", elem_id="preset")
                        train_modes = gr.CheckboxGroup(list(TRAIN_MODES.values()),
                                                       value=[TRAIN_MODES["whole"], TRAIN_MODES["completion"]],
                                                       label="Runs to compare", elem_id="train-modes")
                    with gr.Row():
                        steps = gr.Number(PRESETS["quick"]["steps"], label="steps per run", precision=0,
                                          elem_id="train-steps")
                        lr = gr.Number(PRESETS["quick"]["learning_rate"], label="learning rate",
                                       elem_id="train-lr")
                        seed = gr.Number(0, label="seed", precision=0, elem_id="train-seed")
                        model = gr.Textbox("tiny", label="model: 'tiny' (built here, CPU) or a pretrained causal LM "
                                           "(local dir / Hub id; GPU used when present)", elem_id="train-model")
                    with gr.Row():
                        train_btn = gr.Button("Train both", variant="primary", elem_id="train-button")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-button")
                    train_status = gr.HTML(elem_id="train-status")
                    loss_plot = gr.Plot(elem_id="loss-plot", show_label=False)
                    gr.Markdown(EXPLAIN_TRAIN)
                    generations = gr.HTML(elem_id="generations")
                    heatmap = gr.HTML(elem_id="loss-heatmap")
                with gr.Tab("Dataset stats"):
                    stats_md = gr.Markdown(elem_id="stats")
                    with gr.Row():
                        roles_plot = gr.Plot(elem_id="roles-plot")
                        length_plot = gr.Plot(elem_id="length-plot")

        inputs = [which, sample, upload, hub_id, tokenizer, prompt_t, completion_t, mode, max_length, packing,
                  strategy, index]
        full = [status, token_view, shift_view, compare_view, packing_view, stats_md, roles_plot, length_plot,
                index, count, prompt_t, completion_t, apply_t, preview, share]
        nav_out = [token_view, shift_view, compare_view, packing_view, index, share]
        update_url = dict(fn=None, inputs=[share], outputs=None,
                          js="(q) => { if (q) history.replaceState(null, '', '?' + q); }")

        def choose(kind):
            return lambda: (kind, 0)

        for trigger, kind in ((sample.input, "sample"), (upload.upload, "upload"), (hub_btn.click, "hub")):
            trigger(choose(kind), None, [which, index], queue=False).then(
                refresh, inputs, full, show_progress="minimal").then(**update_url)
        for trigger in (mode.input, packing.input, strategy.input, max_length.submit, tokenizer.submit,
                        completion_t.submit, apply_t.click):
            trigger(refresh, inputs, full, show_progress="minimal").then(**update_url)
        index.input(navigate, inputs, nav_out, show_progress="hidden", trigger_mode="always_last").then(
            **update_url)
        for btn, delta in ((prev_btn, -1), (next_btn, 1)):
            btn.click(lambda *a, d=delta: navigate(*a, delta=d), inputs, nav_out, show_progress="hidden",
                      queue=False).then(**update_url)
        query.submit(find, inputs + [query], index).then(navigate, inputs, nav_out).then(**update_url)
        train_ev = train_btn.click(train_stream, inputs + [preset, train_modes, steps, lr, seed, model],
                                   [loss_plot, train_status, generations, heatmap], concurrency_limit=2,
                                   concurrency_id="training", show_progress="full")
        stop_btn.click(None, None, None, cancels=[train_ev])
        preset.input(preset_values, preset, [steps, lr], queue=False)
        demo.load(from_url, None, [which, sample, hub_id, tokenizer, mode, max_length, packing, strategy, index],
                  queue=False).then(refresh, inputs, full).then(**update_url)
    return demo


demo = build()
view.warm(data.DEFAULT_SAMPLE, MODE_OF[MODES[0]])  # the first page view is then served from the cache
LAUNCH = dict(css_paths=[CSS_PATH], footer_links=["gradio"], run_history=False)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4, max_size=64).launch(server_name=os.environ.get("HOST", "0.0.0.0"),
                                                                **LAUNCH)
