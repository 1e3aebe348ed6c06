"""sftviz web app: wires Gradio components to sftviz.view (what to show) and sftviz.live (training).
Run: python app.py

Every component is known by its elem_id. A handler takes the page's form as one dict (elem_id -> value),
turns it into one `view.ViewRequest`, and returns a dict (elem_id -> new value) of just what changes.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib  # noqa: E402
import html  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

import gradio as gr  # noqa: E402

from sftviz import TRL_VERSION, data, live, one_line, render, view  # noqa: E402
from sftviz.labels import MODES, Options  # noqa: E402
from sftviz.packing import STRATEGIES  # noqa: E402
from sftviz.train import PRESETS, TrainConfig, resolve_modes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSS_PATH = os.path.join(HERE, "assets", "style.css")
SAMPLES = list(data.samples())
DEFAULT_MODE = "completion"
log = logging.getLogger("sftviz.app")

# The page's form: what every view handler reads. "source-tab" is which of sample / upload / Hub is in use.
FORM = ("source-tab", "sample", "upload", "hub-id", "tokenizer", "prompt-template", "completion-template", "mode",
        "max-length", "packing", "packing-strategy", "example-index")
TRAIN_FORM = FORM + ("preset", "train-modes", "train-steps", "train-lr", "train-seed", "train-model")
TEMPLATE_EDITOR = ("prompt-template", "completion-template", "apply-template", "template-preview")

INTRO = f"""# sftviz — what does SFT train on?
Each token below is **context** (the model reads it, label -100, no loss), a **target** (the model is trained
to predict it from the tokens before it) or **masked** (padding: not attended). Labels are exactly what
TRL {TRL_VERSION}'s `SFTTrainer` and its collator feed the model for this data, tokenizer and options."""

EXPLAIN_TRAIN = """**Live training.** The same tiny model is trained twice from identical weights on identical batches;
only the labels differ. The **left** plot is each run's own training loss — averaged over *different* tokens
(whole text: every token; answer only: answer tokens), so the curves are **not comparable**. The **right** plot
scores every run on the *same* held-out tokens: the answer tokens (solid) and the prompt tokens (dotted). That is
the fair comparison. Answer-only training never learns to write prompts (its prompt loss goes up), and a tiny
model trained from scratch may still gain from prompt tokens as extra signal: results depend on data and settings."""


# --- From the form to one request ------------------------------------------------------------------

def _max_length(value):
    if value in (None, ""):
        return None
    if float(value) != int(value) or int(value) < 1:
        raise ValueError("max_length must be a positive number of tokens (or empty for no truncation)")
    return int(value)


def _source(v):
    """(dataset, config, split): the Hub box takes "ID [CONFIG [SPLIT]]", e.g. "openai/gsm8k main test"."""
    if v["source-tab"] == "upload" and v["upload"]:
        return v["upload"], None, "train"
    parts = (v["hub-id"] or "").split()
    if v["source-tab"] == "hub" and parts:
        return parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else "train"
    return v["sample"], None, "train"


def mode_name(value):
    """A mode's page label (or its name, from the API) -> its name; anything else is left for Options to refuse."""
    return next((m.name for m in MODES.values() if value in (m.label, m.name)), value)


def page_request(v, packing=None):
    """The form -> a view.ViewRequest (bad values are refused here, with the core's words)."""
    source, config, split = _source(v)
    options = Options(mode_name(v["mode"]), _max_length(v["max-length"]),
                      bool(v["packing"]) if packing is None else packing, v["packing-strategy"] or "bfd")
    return view.ViewRequest(source, (v["tokenizer"] or "").strip() or "default", v["prompt-template"] or None,
                            v["completion-template"] or None, config, split, options)


def _share_query(v, request, index):
    if v["source-tab"] == "upload":
        return ""  # an uploaded file cannot travel in a link; the box's placeholder says so
    o = request.options
    q = {"tokenizer": request.tokenizer, "mode": o.mode, "max_length": o.max_length or "none", "i": int(index)}
    if v["source-tab"] == "hub" and v["hub-id"]:
        q["data"] = v["hub-id"]
    else:
        q["sample"] = v["sample"]
    if o.packing:
        q.update(packing=o.packing_strategy)
    return urlencode(q)


def _failed(e):
    """Any failure as a one-line message in the status box; the rest of the page keeps its last good view."""
    if not isinstance(e, ValueError):  # not a bad input we know: log it for the operator
        log.exception("unexpected error")
    return render.error_html(one_line(e))


# --- Handlers: form dict in, {elem_id: value} out --------------------------------------------------

def refresh(v):
    """(Re)load data + labels; everything on the page is redrawn."""
    try:
        request = page_request(v)
        vw = view.open_view(request)
        index = max(0, min(int(v["example-index"] or 0), vw.n - 1))
        out = view.example_views(vw, index)
        out["stats"], out["roles-plot"], out["length-plot"] = view.stats(vw)
        out["status"] = f'<div class="sv-status">{_md(view.describe(vw))}</div>'
    except data.NeedsMapping as e:  # open the template editor so the user can map their columns
        return {"status": render.error_html(one_line(e)), **{k: gr.update(visible=True) for k in TEMPLATE_EDITOR}}
    except Exception as e:
        return {"status": _failed(e)}
    mapping = vw.loaded.mapping
    row = 0 if request.options.packing else index
    out.update({
        "example-index": gr.update(value=index, maximum=max(vw.n - 1, 0)),
        "count": f"{vw.n} {'packed rows' if request.options.packing else 'examples'}",
        "prompt-template": gr.update(value=mapping.prompt if mapping else "", visible=mapping is not None),
        "completion-template": gr.update(value=mapping.completion if mapping else "", visible=mapping is not None),
        "apply-template": gr.update(visible=mapping is not None),
        "template-preview": gr.update(value=render.mapping_preview(vw.loaded.raw[row], vw.loaded.rows[row])
                                      if mapping else "", visible=mapping is not None),
        "share": _share_query(v, request, index),
    })
    return out


def navigate(v, delta=0):
    """Only the per-example views (index moved by `delta`): fast, since loads and labels are cached."""
    try:
        request = page_request(v)
        vw = view.open_view(request)
        index = max(0, min(int(v["example-index"] or 0) + delta, vw.n - 1))
        out = view.example_views(vw, index)
    except Exception as e:
        return {"status": _failed(e)}
    return {**out, "example-index": index, "share": _share_query(v, request, index)}


def find(v):
    """The next example whose text contains the search box's words."""
    try:
        vw = view.open_view(page_request(v))
        return {"example-index": view.search(vw, v["search"], int(v["example-index"] or 0))}
    except Exception as e:
        return {"status": _failed(e)}


def choose_source(kind):
    """A new dataset: start at its first example, with its own mapping template (not the last one's)."""
    return lambda: {"source-tab": kind, "example-index": 0, "prompt-template": "", "completion-template": ""}


def _preset_name(label):
    return "quick" if label.startswith("Quick") else "longer"


def preset_values(v):
    p = PRESETS[_preset_name(v["preset"])]
    return {"train-steps": p["steps"], "train-lr": p["learning_rate"]}


def train_stream(v):
    """Stream the loss curves while the runs train; generations and heatmap at the end."""
    try:
        vw = view.open_view(page_request(v, packing=False))
        steps, lr = v["train-steps"], v["train-lr"]
        if not steps or int(steps) < 1 or int(steps) > 20000 or not lr or float(lr) <= 0:
            raise ValueError("steps must be 1-20000 and the learning rate above 0")
        chosen = [mode_name(m) for m in (v["train-modes"] or [])]
        cfg = TrainConfig.preset(_preset_name(v["preset"]), modes=resolve_modes(vw.loaded.rows, chosen),
                                 steps=int(steps), learning_rate=float(lr), seed=int(v["train-seed"] or 0),
                                 model=(v["train-model"] or "tiny").strip())
        yield {"train-status": '<div class="sv-summary">Preparing the runs…</div>', "generations": "",
               "loss-heatmap": ""}
        with contextlib.closing(live.train_updates(vw, cfg)) as updates:
            for fig, status, gens, heat in updates:
                out = {"loss-plot": fig, "train-status": f'<div class="sv-summary">{html.escape(status)}</div>'}
                if gens is not None:
                    out.update({"generations": gens, "loss-heatmap": heat})
                yield out
    except Exception as e:
        yield {"train-status": _failed(e)}


URL_FIELDS = ("source-tab", "sample", "hub-id", "tokenizer", "mode", "max-length", "packing", "packing-strategy",
              "example-index")


def from_url(query):
    """Restore the view from the query string (a teacher's shared link): {elem_id: value} of URL_FIELDS."""
    mode = query.get("mode") if query.get("mode") in MODES else DEFAULT_MODE
    ml = query.get("max_length", "1024")
    index = int(query["i"]) if query.get("i", "").isdigit() else 0
    return {"source-tab": "hub" if query.get("data") else "sample",
            "sample": query.get("sample") if query.get("sample") in SAMPLES else data.DEFAULT_SAMPLE,
            "hub-id": query.get("data", ""), "tokenizer": query.get("tokenizer", "default"),
            "mode": MODES[mode].label, "max-length": None if ml == "none" else int(ml) if ml.isdigit() else 1024,
            "packing": bool(query.get("packing")),
            "packing-strategy": query.get("packing") if query.get("packing") in STRATEGIES else "bfd",
            "example-index": gr.update(value=index, maximum=max(index, 1))}


def _md(text):
    """The status text's **bold** and `code` as HTML (everything else escaped)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return "".join(f"<p>{p}</p>" for p in out.split("\n\n"))


# --- Layout and wiring ------------------------------------------------------------------------------

def _signature(names):
    """A signature naming each form field, so the API (gradio_client) takes them by name."""
    return inspect.Signature([inspect.Parameter(n.replace("-", "_"), inspect.Parameter.POSITIONAL_OR_KEYWORD)
                              for n in names])


def build():
    ui = {}  # elem_id -> component

    def put(component):
        ui[component.elem_id] = component
        return component

    def wire(fn, names, *args, **kwargs):
        """fn(form dict, *args) -> {elem_id: value}, as a Gradio handler over the named components."""
        def handler(*values):
            return {ui[k]: val for k, val in fn(dict(zip(names, values)), *args, **kwargs).items()}

        def streaming(*values):
            with contextlib.closing(fn(dict(zip(names, values)), *args, **kwargs)) as updates:
                for out in updates:
                    yield {ui[k]: val for k, val in out.items()}

        chosen = streaming if inspect.isgeneratorfunction(fn) else handler
        chosen.__signature__ = _signature(names)
        chosen.__name__ = fn.__name__  # the API endpoint's name
        return chosen, [ui[k] for k in names]

    def outputs(*names):
        return [ui[k] for k in names]

    with gr.Blocks(title="sftviz — what does SFT train on?") as demo:
        ui["source-tab"] = gr.State("sample")
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="load-panel"):
                with gr.Tab("Sample"):
                    put(gr.Dropdown(SAMPLES, value=data.DEFAULT_SAMPLE, label="Bundled sample", elem_id="sample"))
                with gr.Tab("Upload"):
                    put(gr.File(label=".jsonl .json .csv .parquet", file_types=list(data.EXTENSIONS),
                                type="filepath", elem_id="upload"))
                with gr.Tab("Hub"):
                    put(gr.Textbox(label="Hub dataset: id [config [split]]", placeholder="e.g. openai/gsm8k main test",
                                   elem_id="hub-id"))
                    put(gr.Button("Load from Hub", elem_id="hub-load"))
                put(gr.Textbox("default", label="Tokenizer: 'default' (bundled, offline) or a Hub id",
                               elem_id="tokenizer"))
                put(gr.Radio([m.label for m in MODES.values()], value=MODES[DEFAULT_MODE].label,
                             label="What is trained (mode)", elem_id="mode"))
                put(gr.Number(1024, label="max_length (empty = none)", precision=0, elem_id="max-length"))
                with gr.Row():
                    put(gr.Checkbox(False, label="Packing", elem_id="packing"))
                    put(gr.Dropdown(list(STRATEGIES), value="bfd", label="Packing strategy",
                                    elem_id="packing-strategy"))
                put(gr.Textbox(label="Prompt template (Jinja, row columns as variables)", lines=3, visible=False,
                               elem_id="prompt-template"))
                put(gr.Textbox(label="Completion template", lines=1, visible=False, elem_id="completion-template"))
                put(gr.Button("Apply template", visible=False, size="sm", elem_id="apply-template"))
                put(gr.HTML(visible=False, elem_id="template-preview"))
                put(gr.Textbox(label="Link to this view (query string)", interactive=False, elem_id="share",
                               placeholder="(an uploaded file cannot be shared by link)", buttons=["copy"]))
            with gr.Column(scale=3):
                put(gr.HTML(elem_id="status"))
                with gr.Row(elem_id="nav"):
                    put(gr.Button("◀ Prev", elem_id="prev", scale=0, min_width=90))
                    put(gr.Slider(0, 1, value=0, step=1, label="Example", elem_id="example-index", scale=3))
                    put(gr.Markdown(elem_id="count"))
                    put(gr.Button("Next ▶", elem_id="next", scale=0, min_width=90))
                    put(gr.Textbox(placeholder="search text…", show_label=False, elem_id="search", scale=2))
                for tab in view.EXAMPLE_TABS:
                    with gr.Tab(tab.title):
                        put(gr.HTML(tab.initial, elem_id=tab.elem_id))
                        if tab.explain:
                            gr.Markdown(tab.explain)
                with gr.Tab("Train: whole vs answer", elem_id="train-tab"):
                    with gr.Row():
                        put(gr.Radio(["Quick demo (~10-30 s)", "Longer (minutes)"], value="Quick demo (~10-30 s)",
                                     label="Preset", elem_id="preset"))
                        put(gr.CheckboxGroup([m.label for m in MODES.values() if m.trainable],
                                             value=[MODES["whole"].label, MODES["completion"].label],
                                             label="Runs to compare", info=f"For chat data, {MODES['completion'].title}"
                                             f" trains the assistant turns ({MODES['completion'].on_chat}).",
                                             elem_id="train-modes"))
                    with gr.Row():
                        put(gr.Number(PRESETS["quick"]["steps"], label="steps per run", precision=0,
                                      elem_id="train-steps"))
                        put(gr.Number(PRESETS["quick"]["learning_rate"], label="learning rate", elem_id="train-lr"))
                        put(gr.Number(0, label="seed", precision=0, elem_id="train-seed"))
                        put(gr.Textbox("tiny", label="model: 'tiny' (built here, CPU) or a pretrained causal LM "
                                       "(local dir / Hub id; GPU used when present)", elem_id="train-model"))
                    with gr.Row():
                        put(gr.Button("Train both", variant="primary", elem_id="train-button"))
                        put(gr.Button("Stop", variant="stop", elem_id="stop-button"))
                    put(gr.HTML(elem_id="train-status"))
                    put(gr.Plot(elem_id="loss-plot", show_label=False))
                    gr.Markdown(EXPLAIN_TRAIN)
                    put(gr.HTML(elem_id="generations"))
                    put(gr.HTML(elem_id="loss-heatmap"))
                with gr.Tab("Dataset stats"):
                    put(gr.Markdown(elem_id="stats"))
                    with gr.Row():
                        put(gr.Plot(elem_id="roles-plot"))
                        put(gr.Plot(elem_id="length-plot"))

        example_ids = [tab.elem_id for tab in view.EXAMPLE_TABS]
        full = outputs("status", *example_ids, "stats", "roles-plot", "length-plot", "example-index", "count",
                       *TEMPLATE_EDITOR, "share")
        nav_out = outputs("status", *example_ids, "example-index", "share")
        update_url = dict(fn=None, inputs=outputs("share"), outputs=None,
                          js="(q) => { if (q) history.replaceState(null, '', '?' + q); }")
        on_refresh, form = wire(refresh, FORM)

        for trigger, kind in ((ui["sample"].input, "sample"), (ui["upload"].upload, "upload"),
                              (ui["hub-load"].click, "hub")):
            trigger(lambda choose=choose_source(kind): {ui[k]: val for k, val in choose().items()}, None,
                    outputs("source-tab", "example-index", "prompt-template", "completion-template"), queue=False
                    ).then(on_refresh, form, full, show_progress="minimal").then(**update_url)
        for trigger in (ui["mode"].input, ui["packing"].input, ui["packing-strategy"].input, ui["max-length"].submit,
                        ui["tokenizer"].submit, ui["completion-template"].submit, ui["apply-template"].click):
            trigger(on_refresh, form, full, show_progress="minimal").then(**update_url)
        on_nav, _ = wire(navigate, FORM)
        ui["example-index"].input(on_nav, form, nav_out, show_progress="hidden", trigger_mode="always_last").then(
            **update_url)
        for button, delta in (("prev", -1), ("next", 1)):
            fn, _ = wire(navigate, FORM, delta=delta)
            ui[button].click(fn, form, nav_out, show_progress="hidden", queue=False).then(**update_url)
        on_find, find_in = wire(find, FORM + ("search",))
        ui["search"].submit(on_find, find_in, outputs("status", "example-index")).then(
            on_nav, form, nav_out).then(**update_url)
        on_train, train_in = wire(train_stream, TRAIN_FORM)
        train_ev = ui["train-button"].click(on_train, train_in, outputs("loss-plot", "train-status", "generations",
                                                                        "loss-heatmap"),
                                            concurrency_limit=2, concurrency_id="training", show_progress="full")
        ui["stop-button"].click(None, None, None, cancels=[train_ev])
        on_preset, preset_in = wire(preset_values, ("preset",))
        ui["preset"].input(on_preset, preset_in, outputs("train-steps", "train-lr"), queue=False)
        def restore(request: gr.Request):
            return {ui[k]: val for k, val in from_url(dict(request.query_params) if request else {}).items()}

        demo.load(restore, None, outputs(*URL_FIELDS), queue=False).then(on_refresh, form, full).then(**update_url)
    return demo


demo = build()
view.warm(view.ViewRequest(data.DEFAULT_SAMPLE, options=Options(DEFAULT_MODE)))  # first page view from the cache
LAUNCH = dict(css_paths=[CSS_PATH], footer_links=["gradio"], run_history=False)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4, max_size=64).launch(server_name=os.environ.get("HOST", "0.0.0.0"),
                                                                **LAUNCH)
