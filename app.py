"""sftviz web app: wires Gradio components to sftviz.view (what to show) and sftviz.live (training).
Run: python app.py

Every component is known by its elem_id. A handler takes the page's form as one dict (elem_id -> value),
turns it into one `view.ViewRequest`, and returns a dict (elem_id -> new value) of just what changes.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin (shared cores)

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import html  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

import gradio as gr  # noqa: E402

from sftviz import TRL_VERSION, data, export, live, one_line, render, uploads, view, zerogpu  # noqa: E402
from sftviz.labels import MAX_LENGTH_LIMIT, MODES, Options  # noqa: E402
from sftviz.packing import STRATEGIES  # noqa: E402
from sftviz.train import MAX_MODEL_PARAMS, PRESETS, TrainConfig, check_model, resolve_modes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSS_PATH = os.path.join(HERE, "assets", "style.css")
SAMPLES = list(data.samples())
DEFAULT_MODE = "completion"
# Visitors watching trainings at once (a watcher only waits for its job's updates: the jobs themselves run in
# sftviz.jobs' worker processes, one per core, identical runs shared); more wait in Gradio's queue.
TRAIN_WATCHERS = int(os.environ.get("SFTVIZ_TRAIN_WATCHERS", 24))
log = logging.getLogger("sftviz.app")
# Reading files and folders on the server from the page (Hub box, tokenizer, model fields) is for a private,
# local run only: the operator opts in with SFTVIZ_LOCAL_PATHS=1. Hosted, the page reaches bundled samples,
# the visitor's own uploads and Hub ids.
LOCAL_PATHS = os.environ.get("SFTVIZ_LOCAL_PATHS", "").lower() in ("1", "true", "yes")

# The page's form: what a (re)load reads. "source-tab" is which of sample / upload / Hub is in use, and
# "upload-path" the session's private copy of its upload (both server-side state).
FORM = ("source-tab", "sample", "upload-path", "hub-id", "columns", "text-field", "tokenizer", "prompt-template",
        "completion-template", "mode", "max-length", "packing", "packing-strategy", "example-index")
# Browsing and training read the last good request instead ("view-request", server-side state).
NAV_FORM = ("view-request", "example-index")
TRAIN_FORM = ("view-request", "preset", "train-modes", "train-steps", "train-lr", "train-seed", "train-model",
              "train-weighted", "train-weight")
TEMPLATE_EDITOR = ("prompt-template", "completion-template", "apply-template", "template-preview")
DEFAULT_FORM = {"source-tab": "sample", "sample": data.DEFAULT_SAMPLE, "upload-path": None, "hub-id": "",
                "columns": data.READINGS["trl"], "text-field": "text", "tokenizer": "default", "prompt-template": "",
                "completion-template": "",
                "mode": MODES[DEFAULT_MODE].label, "max-length": 1024, "packing": False, "packing-strategy": "bfd",
                "example-index": 0}

INTRO = f"""# sftviz — what does SFT train on?
Each token below is **context** (the model reads it, label -100, no loss), a **target** (the model is trained
to predict it from the tokens before it) or **masked** (padding: not attended). Labels are exactly what
TRL {TRL_VERSION}'s `SFTTrainer` and its collator feed the model for this data, tokenizer and options."""


WARMING_UP = ('<div class="sv-status"><p>⏳ Warming up: loading the data, the tokenizer and the labels '
              '(a few seconds after the server starts)…</p></div>')

EXPLAIN_WEIGHT = """**Prompt loss weight w (a third run, not a TRL 1.16 option).** Between "whole text" (prompt weight 1)
and "answer only" (weight 0): prompt tokens count w, answer tokens 1, and the run's loss is the weighted sum divided
by the sum of the weights. What published studies found:
[Huerta-Enochian & Ko 2024, *Instruction Fine-Tuning: Does Prompt Loss Matter?*](https://arxiv.org/abs/2401.13586)
(arXiv 2401.13586): for short completions a small prompt weight (around 0.01-0.1) does best, while for long
completions the weight has no real effect;
[Shi et al. 2024, *Instruction Tuning With Loss Over Instructions*](https://arxiv.org/abs/2405.14394) (NeurIPS,
arXiv 2405.14394): training on the instructions too helps when instructions are long and outputs short, or when
there are few training examples. TRL has no such option; Axolotl, LLaMA-Factory and others neither (as of TRL 1.16)."""

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
    if float(value) != int(value):
        raise ValueError("max_length must be a whole number of tokens (or empty for no truncation)")
    return int(value)


def _source(v):
    """(dataset, where, config, split) of the tab in use. The Hub box takes "ID [CONFIG [SPLIT]]", e.g.
    "openai/gsm8k main test". The upload is the session's own private copy (server-side state)."""
    if v["source-tab"] == "upload":
        if not v["upload-path"]:
            raise ValueError("no file uploaded in this session yet")
        return v["upload-path"], "file", None, "train"
    parts = (v["hub-id"] or "").split()
    if v["source-tab"] == "hub":
        if not parts:
            raise ValueError("type a Hub dataset id, e.g. openai/gsm8k main test")
        return parts[0], "any" if LOCAL_PATHS else "hub", parts[1] if len(parts) > 1 else None, \
            parts[2] if len(parts) > 2 else "train"
    return v["sample"], "sample", None, "train"


def reading_name(value):
    """A reading's page label (or its name, from the API or a link) -> its name (data.decide refuses others)."""
    return next((k for k, label in data.READINGS.items() if value in (k, label)), value or "trl")


def mode_name(value):
    """A mode's page label (or its name, from the API) -> its name; anything else is left for Options to refuse."""
    return next((m.name for m in MODES.values() if value in (m.label, m.name)), value)


def page_request(v):
    """The form -> a view.ViewRequest (bad values are refused here, with the core's words)."""
    source, where, config, split = _source(v)
    options = Options(mode_name(v["mode"]), _max_length(v["max-length"]), bool(v["packing"]),
                      v["packing-strategy"] or "bfd", (v["text-field"] or "").strip()[:200] or "text")
    return view.ViewRequest(source, where, (v["tokenizer"] or "").strip() or "default",
                            "any" if LOCAL_PATHS else "hub", v["prompt-template"] or None,
                            v["completion-template"] or None, config, split, options, reading_name(v["columns"]))


def share_query(request, index):
    """The query string that reopens this view (an upload cannot travel in a link)."""
    if request.where == "file":
        return ""
    o = request.options
    q = {"tokenizer": request.tokenizer, "mode": o.mode, "max_length": o.max_length or "none", "i": int(index)}
    if o.text_field != "text":
        q["text_field"] = o.text_field
    if request.columns != "trl":
        q["columns"] = request.columns
    if request.where == "sample":
        q["sample"] = request.source
    else:
        extra = [request.config or "default", request.split] if request.split != "train" else [request.config]
        q["data"] = " ".join(filter(None, [request.source, *extra]))
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
    """(Re)load data + labels; everything on the page is redrawn. On success the request becomes the
    session's "view-request": what Prev / Next / search / Train use, so a failed load keeps the last
    good view working."""
    try:
        request = page_request(v)
        vw = view.open_view(request)
        index = max(0, min(int(v["example-index"] or 0), vw.n - 1))
        if isinstance(vw, view.Refused):
            return refused(request, vw, index)
        out = view.example_views(vw, index)
        out["stats"], out["roles-plot"], out["length-plot"] = view.stats(vw)
        out.update(export_views(request, vw.loaded.decision, vw.loaded.rows[0]))
        out["doctor-report"] = render.doctor_html(view.findings(vw), len(vw.loaded.rows), "" if view.covers_all(vw)
                                                  else f"(The first {view.MAX_ROWS:,} rows; every row is being "
                                                  f"checked in the background.)", len(vw.loaded.rows),
                                                  request.options.packing)
        out["doctor-progress"] = ""
        out["status"] = f'<div class="sv-status">{_md(view.describe(vw))}</div>'
    except data.NeedsMapping as e:  # open the template editor so the user can map their columns
        return {"status": render.error_html(one_line(e)), **{k: gr.update(visible=True) for k in TEMPLATE_EDITOR}}
    except Exception as e:
        message = _failed(e)
        if v["prompt-template"] or v["completion-template"]:  # also where the user is looking: under Apply
            return {"status": message, "template-preview": gr.update(value=message, visible=True)}
        return {"status": message}
    mapping = vw.loaded.mapping
    row = 0 if request.options.packing else index
    out.update({
        **columns_choice(request, vw.loaded.decision.offers),
        "view-request": request,
        "example-index": gr.update(value=index, maximum=max(vw.n - 1, 1), interactive=vw.n > 1),
        "count": f"{vw.n} {'packed row' if request.options.packing else 'example'}{'s' if vw.n != 1 else ''}",
        "prompt-template": gr.update(value=mapping.prompt if mapping else "", visible=mapping is not None),
        "completion-template": gr.update(value=mapping.completion if mapping else "", visible=mapping is not None),
        "apply-template": gr.update(visible=mapping is not None),
        "template-preview": gr.update(value=render.mapping_preview(vw.loaded.raw[row], vw.loaded.rows[row])
                                      if mapping else "", visible=mapping is not None),
        "share": share_query(request, index),
    })
    return out


def columns_choice(request, offers):
    """The "How to read your columns" choice: shown only where there is more than one way."""
    choices = [data.READINGS[k] for k in ("trl", *offers)]
    return {"columns": gr.update(choices=choices, value=data.READINGS[request.columns], visible=len(choices) > 1)}


def refused(request, vw, index):
    """TRL stops on the file as it is: its reason and the fixes (status), each fix's labels (Tokens tab),
    the doctor's error; nothing trained or exported until a fix is chosen. Browsing goes on over the fixes."""
    return {**view.example_views(vw, index), **columns_choice(request, tuple(vw.fixes)),
            "status": f'<div class="sv-status">{_md(view.describe(vw))}</div>', "view-request": request,
            "stats": "TRL stops on this file as it is: choose a fix to see its statistics.", "roles-plot": None,
            "length-plot": None, "doctor-report": render.doctor_html([view.stops_finding(vw)], vw.n),
            "doctor-progress": "",
            "export-script": f"# {vw.reason}\n# Choose a fix (How to read your columns) to export a run TRL accepts.",
            "export-yaml": "", "export-table": "",
            "example-index": gr.update(value=index, maximum=max(vw.n - 1, 1), interactive=vw.n > 1),
            "count": f"{vw.n} example{'s' if vw.n != 1 else ''}", "share": share_query(request, index),
            **{k: gr.update(visible=False) for k in TEMPLATE_EDITOR}}


def export_views(request, decision, first_row):
    """The hand-off: a TRL script, a `trl sft` YAML and other trainers' settings for what the page shows.
    Files are named as the visitor knows them (a sample by its path in the sftviz repository)."""
    if request.where == "sample":
        shown = os.path.relpath(data.samples()[request.source], HERE)
    else:
        shown = os.path.basename(request.source) if request.where == "file" else None
    args = dict(mapping=decision.mapping, config=request.config, split=request.split, drop=decision.drop)
    return {"export-script": export.script(request.source, request.tokenizer, request.options, shown_path=shown,
                                           **args),
            "export-yaml": export.yaml_config(request.source, request.options, **args),
            "export-table": export.frameworks_table(request.options, first_row)}


def navigate(v, delta=0):
    """Only the per-example views of the last good view (index moved by `delta`): fast, from the cache."""
    request = v["view-request"]
    if request is None:
        return {}
    try:
        vw = view.open_view(request)
        index = max(0, min(int(v["example-index"] or 0) + delta, vw.n - 1))
        out = view.example_views(vw, index)
    except Exception as e:
        return {"status": _failed(e)}
    return {**out, "example-index": index, "share": share_query(request, index)}


FINDING_EXAMPLE = re.compile(r"(\d{1,9}):((?:\d{1,9},){0,63}\d{1,9})?")  # "index:pos,pos", as render writes it


def open_finding(v):
    """A doctor finding's example (the button's "index:positions"), opened in the Tokens tab with the
    tokens it points at outlined."""
    request, chosen = v["view-request"], v["doctor-open"]
    if request is None or not chosen:
        return {}
    try:
        if not isinstance(chosen, str) or not FINDING_EXAMPLE.fullmatch(chosen):
            raise ValueError("that is not an example of a finding")
        index, positions = chosen.split(":")
        vw = view.open_view(request)
        index = max(0, min(int(index), vw.n - 1))
        out = view.example_views(vw, index, [int(p) for p in positions.split(",") if p])
    except Exception as e:
        return {"status": _failed(e)}
    return {**out, "example-index": index, "share": share_query(request, index),
            "main-tabs": gr.Tabs(selected=view.EXAMPLE_TABS[0].elem_id)}


def full_doctor(v, current=lambda: True):
    """The doctor over every row (a shared background pass) when the page holds only the first rows: a
    progress bar while it runs, then its findings and the statistics of every row. Stops quietly once the visitor has loaded another view
    (`current()` turns false), so an old pass never overwrites a newer view."""
    request = v["view-request"]
    try:
        if request is None:
            return
        vw = view.open_view(request)
        if isinstance(vw, view.Refused) or view.covers_all(vw):
            return
        total = done = 0
        with view.full_check(request, vw) as watch:
            for updates in watch.follow(0.5):
                if not current():
                    return
                for u in updates:
                    total, done = u.get("total", total), u.get("rows", done)
                place, sharing = watch.place(), watch.sharing()
                waiting = f" (waiting for a free worker: {place})" if place else ""
                shared = f", {sharing}" if sharing else ""
                yield {"doctor-progress": render.progress_html(done, total, f"Checking every row{shared}{waiting}")}
            found, n, stats = watch.result
        if current():
            md, lengths = view.full_stats(stats, request.options)
            yield {"doctor-progress": "", "doctor-report": render.doctor_html(
                found, n, f"(Every row of {request.name}.)", len(vw.loaded.rows), request.options.packing),
                "stats": md, "length-plot": lengths}
    except Exception as e:
        if current():
            yield {"doctor-progress": render.error_html(f"Checking every row: {one_line(e)}")}


def find(v):
    """The next example whose text contains the search box's words."""
    if v["view-request"] is None:
        return {}
    try:
        vw = view.open_view(v["view-request"])
        return {"example-index": view.search(vw, v["search"], int(v["example-index"] or 0))}
    except Exception as e:
        return {"status": _failed(e)}


def choose_source(kind):
    """A new dataset: start at its first example, with its own mapping template (not the last one's)."""
    return lambda: {"source-tab": kind, "example-index": 0, "prompt-template": "", "completion-template": "",
                    "columns": data.READINGS["trl"]}


def receive_upload(path, session):
    """An upload goes into the session's private folder; the page keeps only that path (server-side)."""
    try:
        return {"upload-path": uploads.receive(path, session), **choose_source("upload")()}
    except Exception as e:
        return {"status": _failed(e)}


def end_session(session):
    """The visitor left: their uploads and everything cached from them are deleted."""
    try:
        folder = uploads.discard(session)
    except uploads.UploadError:
        return
    view.forget(lambda source: str(source).startswith(folder + os.sep))


def _preset_name(label):
    return "quick" if label.startswith("Quick") else "longer" if label.startswith("Longer") else label


def preset_values(v):
    p = PRESETS[_preset_name(v["preset"])]
    return {"train-steps": p["steps"], "train-lr": p["learning_rate"]}


def _number(value, name):
    if value in (None, ""):
        raise ValueError(f"{name} is empty")
    return value


def train_stream(v, register=None):
    """Stream the loss curves while the runs train on the last good view's data (unpacked); generations
    and heatmap at the end. `register(watch)`: see live.train_updates."""
    try:
        request = v["view-request"]
        if request is None:
            raise ValueError("load a dataset first")
        request = dataclasses.replace(request, options=dataclasses.replace(request.options, packing=False))
        vw = view.open_view(request)
        if isinstance(vw, view.Refused):
            raise ValueError(f"{vw.reason} Choose a fix under 'How to read your columns' first.")
        chosen = [mode_name(m) for m in (v["train-modes"] or [])]
        model = check_model(v["train-model"], "any" if LOCAL_PATHS else "hub", MAX_MODEL_PARAMS)
        cfg = TrainConfig.preset(_preset_name(v["preset"] or ""), modes=resolve_modes(vw.loaded.rows, chosen),
                                 steps=_number(v["train-steps"], "steps"), learning_rate=_number(v["train-lr"], "lr"),
                                 seed=_number(v["train-seed"], "seed"), model=model,
                                 prompt_weight=_number(v["train-weight"], "prompt weight") if v["train-weighted"]
                                 else None)
        yield {"train-status": '<div class="sv-summary">Preparing the runs…</div>', "generations": "",
               "loss-heatmap": ""}
        # The tiny model trains in the CPU workers on every host; a pretrained model on a ZeroGPU Space trains in
        # this visitor's own GPU call (sftviz.zerogpu), made here, in the web process, from their event.
        gpu = cfg.model != "tiny" and zerogpu.active()
        stream = live.train_updates_on_gpu(vw, cfg, register=register) if gpu else \
            live.train_updates(vw, cfg, register=register)
        with contextlib.closing(stream) as updates:
            for fig, status, gens, heat in updates:
                out = {"loss-plot": fig, "train-status": f'<div class="sv-summary">{html.escape(status)}</div>'}
                if gens is not None:
                    out.update({"generations": gens, "loss-heatmap": heat})
                yield out
    except Exception as e:
        refused_gpu = zerogpu.refusal(e)
        yield {"train-status": render.error_html(refused_gpu) if refused_gpu else _failed(e)}


# A click on a finding's example button sends its "index:positions" with the doctor report's click event.
OPEN_ON_CLICK = """element.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-open]');
  if (b) trigger('click', {open: b.dataset.open});
});"""

URL_FIELDS = ("source-tab", "sample", "hub-id", "columns", "text-field", "tokenizer", "mode", "max-length", "packing",
              "packing-strategy", "example-index")


def _whole(text, high, default):
    """A query-string number: digits, at most `high`; anything else is the default (a link is never an error)."""
    text = str(text or "")
    return int(text) if text.isdigit() and len(text) <= 9 and int(text) <= high else default


def from_url(query):
    """Restore the view from the query string (a teacher's shared link): {elem_id: value} of URL_FIELDS.
    A link is a visitor's input like any other: values are checked here, and loading checks them again."""
    mode = query.get("mode") if query.get("mode") in MODES else DEFAULT_MODE
    index = _whole(query.get("i"), view.MAX_ROWS, 0)
    return {"source-tab": "hub" if query.get("data") else "sample",
            "sample": query.get("sample") if query.get("sample") in SAMPLES else data.DEFAULT_SAMPLE,
            "hub-id": query.get("data", "")[:300], "tokenizer": query.get("tokenizer", "default")[:200],
            "columns": data.READINGS.get(query.get("columns"), data.READINGS["trl"]),
            "text-field": query.get("text_field", "text")[:200] or "text",
            "mode": MODES[mode].label,
            "max-length": None if query.get("max_length") == "none" else _whole(query.get("max_length"),
                                                                                MAX_LENGTH_LIMIT, 1024),
            "packing": query.get("packing") in STRATEGIES,
            "packing-strategy": query.get("packing") if query.get("packing") in STRATEGIES else "bfd",
            "example-index": gr.update(value=index, maximum=max(index, 1))}


_first_views, _first_lock = OrderedDict(), threading.Lock()
FIRST_VIEWS = 32  # links whose first view is kept


def first_view(query):
    """Everything the page shows when it opens on a link (no link: the default view): computed once per
    link and then served from memory, so thirty students opening the page at once wait for nobody."""
    fields = from_url(query)
    key = tuple(sorted((k, repr(v)) for k, v in fields.items()))
    with _first_lock:
        out = _first_views.get(key)
    if out is None:
        form = {**DEFAULT_FORM, **fields, "example-index": fields["example-index"]["value"]}
        out = {**fields, **refresh(form)}
        if "view-request" not in out and not any(k in out for k in TEMPLATE_EDITOR) and fields != from_url({}):
            # a link that does not load opens on the default view, under the link's message
            return {**first_view({}), "status": out["status"]}
        if "view-request" in out:  # a view that loaded (a failed one is tried again by the next visitor)
            with _first_lock:
                _first_views[key] = out
                while len(_first_views) > FIRST_VIEWS:
                    _first_views.popitem(last=False)
    return {k: dict(v) if isinstance(v, dict) else v for k, v in out.items()}  # Gradio pops from update dicts


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

    def to_ui(out):
        """{elem_id: value} -> {component: value}, what Gradio takes."""
        return {ui[k]: val for k, val in out.items()}

    def wire(fn, names, *args, **kwargs):
        """fn(form dict, *args) -> {elem_id: value}, as a Gradio handler over the named components."""
        def handler(*values):
            return to_ui(fn(dict(zip(names, values)), *args, **kwargs))

        def streaming(*values):
            with contextlib.closing(fn(dict(zip(names, values)), *args, **kwargs)) as updates:
                for out in updates:
                    yield to_ui(out)

        chosen = streaming if inspect.isgeneratorfunction(fn) else handler
        chosen.__signature__ = _signature(names)
        chosen.__name__ = fn.__name__  # the API endpoint's name
        return chosen, [ui[k] for k in names]

    def outputs(*names):
        return [ui[k] for k in names]

    # Gradio's own copies of uploads and outputs go after an hour (ours are moved out at once: sftviz.uploads)
    with gr.Blocks(title="sftviz — what does SFT train on?", delete_cache=(600, 3600)) as demo:
        for state, value in (("source-tab", "sample"), ("upload-path", None), ("view-request", None)):
            ui[state] = gr.State(value)  # per session, kept on the server: the API cannot set them
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="load-panel"):
                with gr.Tab("Sample"):
                    put(gr.Dropdown(SAMPLES, value=DEFAULT_FORM["sample"], label="Bundled sample", elem_id="sample"))
                with gr.Tab("Upload"):
                    put(gr.File(label=".jsonl .json .csv .parquet", file_types=list(data.EXTENSIONS),
                                type="filepath", elem_id="upload"))
                with gr.Tab("Hub"):
                    put(gr.Textbox(label="Hub dataset: id [config [split]]", placeholder="e.g. openai/gsm8k main test",
                                   elem_id="hub-id"))
                    put(gr.Button("Load from Hub", elem_id="hub-load"))
                put(gr.Radio(list(data.READINGS.values()), value=DEFAULT_FORM["columns"], visible=False,
                             label="How to read your columns", elem_id="columns"))
                put(gr.Textbox("text", label="Text field (SFTConfig.dataset_text_field)", elem_id="text-field"))
                put(gr.Textbox("default", label="Tokenizer: 'default' (bundled, offline) or a Hub id",
                               elem_id="tokenizer"))
                put(gr.Radio([m.label for m in MODES.values()], value=DEFAULT_FORM["mode"],
                             label="What is trained (mode)", elem_id="mode"))
                put(gr.Number(DEFAULT_FORM["max-length"], label="max_length (empty = none)", precision=0,
                              elem_id="max-length"))
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
                put(gr.HTML(WARMING_UP, elem_id="status"))
                with gr.Row(elem_id="nav"):
                    put(gr.Button("◀ Prev", elem_id="prev", scale=0, min_width=90))
                    put(gr.Slider(0, 1, value=0, step=1, label="Example", elem_id="example-index", scale=3))
                    put(gr.Markdown(elem_id="count"))
                    put(gr.Button("Next ▶", elem_id="next", scale=0, min_width=90))
                    put(gr.Textbox(placeholder="search text…", show_label=False, elem_id="search", scale=2))
                with gr.Tabs(elem_id="main-tabs") as tabs:
                    for tab in view.EXAMPLE_TABS:
                        with gr.Tab(tab.title, id=tab.elem_id):
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
                                           "(Hub id; a GPU when the host has one)", elem_id="train-model"))
                        with gr.Row():
                            put(gr.Checkbox(False, label="Add a third run: prompt loss weight w (not a TRL option)",
                                            elem_id="train-weighted"))
                            put(gr.Number(0.1, label="w (prompt tokens' weight, 0-1)", minimum=0, maximum=1,
                                          step=0.05, elem_id="train-weight"))
                        with gr.Row():
                            put(gr.Button("Train", variant="primary", elem_id="train-button"))
                            put(gr.Button("Stop", variant="stop", elem_id="stop-button"))
                        put(gr.HTML(elem_id="train-status"))
                        put(gr.Plot(elem_id="loss-plot", show_label=False))
                        gr.Markdown(EXPLAIN_TRAIN)
                        with gr.Accordion("Prompt loss weight: what the studies found", open=False):
                            gr.Markdown(EXPLAIN_WEIGHT, elem_id="explain-weight")
                        put(gr.HTML(elem_id="generations"))
                        put(gr.HTML(elem_id="loss-heatmap"))
                    with gr.Tab("Dataset stats"):
                        put(gr.Markdown(elem_id="stats"))
                        with gr.Row():
                            put(gr.Plot(elem_id="roles-plot"))
                            put(gr.Plot(elem_id="length-plot"))
                    with gr.Tab("Export", id="export"):
                        gr.Markdown("The settings shown here, for a real run: a TRL script (`python sft.py`, or "
                                    "`accelerate launch sft.py` on several GPUs) and a `trl sft --config` file.")
                        put(gr.Code(language="python", label="sft.py", elem_id="export-script"))
                        put(gr.Code(language="yaml", label="config.yaml", elem_id="export-yaml"))
                        put(gr.Markdown(elem_id="export-table"))
                    with gr.Tab("Doctor", id="doctor"):
                        put(gr.HTML(elem_id="doctor-progress"))
                        put(gr.HTML(elem_id="doctor-report", js_on_load=OPEN_ON_CLICK))

        example_ids = [tab.elem_id for tab in view.EXAMPLE_TABS]
        ui["main-tabs"] = tabs
        full = outputs("status", "view-request", *example_ids, "stats", "roles-plot", "length-plot", "doctor-report",
                       "doctor-progress", "export-script", "export-yaml", "export-table", "example-index", "count",
                       *TEMPLATE_EDITOR, "columns", "share")
        nav_out = outputs("status", *example_ids, "example-index", "share")
        new_source = outputs("source-tab", "example-index", "prompt-template", "completion-template", "columns")
        update_url = dict(fn=None, inputs=outputs("share"), outputs=None,
                          js="(q) => { if (q) history.replaceState(null, '', '?' + q); }")
        on_refresh, form = wire(refresh, FORM)
        latest = {}  # session -> its latest view request: a full doctor pass for an older view stops

        def on_full(request_value, request: gr.Request):
            session = request.session_hash if request else None
            latest[session] = request_value
            current = lambda: latest.get(session) is request_value  # noqa: E731
            said = False
            with contextlib.closing(full_doctor({"view-request": request_value}, current)) as updates:
                for out in updates:
                    said = True
                    yield to_ui(out)
            if not said:  # a generator that yields nothing would blank its outputs: change nothing instead
                yield {ui["doctor-progress"]: gr.skip()}

        full_check = dict(fn=on_full, inputs=outputs("view-request"),
                          outputs=outputs("doctor-progress", "doctor-report", "stats", "length-plot"),
                          show_progress="hidden", concurrency_limit=None, api_name=False)

        for trigger, kind in ((ui["sample"].input, "sample"), (ui["hub-load"].click, "hub")):
            trigger(lambda choose=choose_source(kind): to_ui(choose()), None, new_source,
                    queue=False).then(on_refresh, form, full, show_progress="minimal").then(**update_url).then(
                    **full_check)

        def upload(path, request: gr.Request):
            return to_ui(receive_upload(path, request.session_hash))

        ui["upload"].upload(upload, ui["upload"], outputs("upload-path", "status") + new_source, queue=False).then(
            on_refresh, form, full, show_progress="minimal").then(**update_url).then(**full_check)
        # another reading of the columns starts from its own template (the last one's would imply a mapping)
        ui["columns"].input(lambda: to_ui({"prompt-template": "", "completion-template": ""}), None,
                            outputs("prompt-template", "completion-template"), queue=False).then(
            on_refresh, form, full, show_progress="minimal").then(**update_url).then(**full_check)
        for trigger in (ui["text-field"].submit, ui["mode"].input, ui["packing"].input, ui["packing-strategy"].input,
                        ui["max-length"].submit,
                        ui["tokenizer"].submit, ui["completion-template"].submit, ui["apply-template"].click):
            trigger(on_refresh, form, full, show_progress="minimal").then(**update_url).then(**full_check)
        on_nav, nav_in = wire(navigate, NAV_FORM)
        ui["example-index"].input(on_nav, nav_in, nav_out, show_progress="hidden", trigger_mode="always_last",
                                  api_name="goto").then(**update_url)
        for button, delta in (("prev", -1), ("next", 1)):
            fn, _ = wire(navigate, NAV_FORM, delta=delta)
            ui[button].click(fn, nav_in, nav_out, show_progress="hidden", queue=False, api_name=button).then(
                **update_url)
        def on_open(request_value, event: gr.EventData):
            sent = getattr(event, "_data", None)  # what the button's trigger('click', {open: ...}) sent
            return to_ui(open_finding({"view-request": request_value,
                                       "doctor-open": sent.get("open") if isinstance(sent, dict) else None}))

        ui["doctor-report"].click(on_open, outputs("view-request"), outputs("status", *example_ids, "example-index",
                                                                            "share", "main-tabs"),
                                  show_progress="hidden", api_name="open_finding").then(**update_url)
        on_find, find_in = wire(find, NAV_FORM + ("search",))
        ui["search"].submit(on_find, find_in, outputs("status", "example-index")).then(
            on_nav, nav_in, nav_out).then(**update_url)
        _, train_in = wire(train_stream, TRAIN_FORM)
        watching = {}  # session -> its training watches: Stop and a closed tab close them (not left to the GC)

        def on_train(*args):  # the form's values, then the gr.Request (see the signature below)
            values, request = args[:-1], args[-1]
            session = request.session_hash if request else None
            own = set()  # this press's watches (also listed under the session, for Stop and a closed tab)

            def register(watch):
                own.add(watch)
                watching.setdefault(session, set()).add(watch)

            try:
                with contextlib.closing(train_stream(dict(zip(TRAIN_FORM, values)), register)) as updates:
                    for out in updates:
                        yield to_ui(out)
            finally:
                for watch in own:
                    watch.close()
                    watching.get(session, set()).discard(watch)

        def stop_training(session):
            for watch in watching.pop(session, set()):
                watch.close()

        on_train.__signature__ = inspect.Signature(
            list(_signature(TRAIN_FORM).parameters.values())
            + [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)])
        on_train.__annotations__ = {"request": gr.Request}  # what Gradio reads to pass the request
        on_train.__name__ = "train_stream"
        ui["train-button"].click(on_train, train_in, outputs("loss-plot", "train-status", "generations", "loss-heatmap"),
                                 concurrency_limit=TRAIN_WATCHERS, concurrency_id="training", show_progress="full")

        def stop(request: gr.Request):  # at once, outside the queue: the session's runs stop being watched,
            stop_training(request.session_hash if request else None)  # and their streams end with "Stopped"

        ui["stop-button"].click(stop, None, None, queue=False)
        on_preset, preset_in = wire(preset_values, ("preset",))
        ui["preset"].input(on_preset, preset_in, outputs("train-steps", "train-lr"), queue=False)

        def on_first(request: gr.Request):
            return to_ui(first_view(dict(request.query_params) if request else {}))

        # the first view is served outside the queue (from memory): it never waits behind a class's events
        demo.load(on_first, None, list(dict.fromkeys(outputs(*URL_FIELDS) + full)), queue=False,
                  api_name="first_view").then(**update_url).then(**full_check)
        def leave(request: gr.Request):
            latest.pop(request.session_hash, None)
            stop_training(request.session_hash)
            end_session(request.session_hash)

        demo.unload(leave)
    return demo


def warm_up():
    """The default view (load, labels, stats, the doctor's findings, the page) computed ahead of the first
    visitor, in a thread: the server answers at once, and a page opened meanwhile says it is warming up and
    gets the same computation when it is done (view's caches join a computation in progress)."""
    try:
        view.warm(page_request(DEFAULT_FORM))
        first_view({})
    except Exception:  # noqa: BLE001  (the first visitor then computes it, and sees any error)
        log.exception("warming up the default view")


demo = build()
view.import_training_stack()  # imports stay in the main thread, before anything is forked
WARM_UP = threading.Thread(target=warm_up, name="sftviz-warm-up", daemon=True)
WARM_UP.start()
uploads.start_sweeper()
LAUNCH = dict(css_paths=[CSS_PATH], footer_links=["gradio"], run_history=False, max_file_size=f"{uploads.MAX_MB}mb",
              max_threads=64)  # training watchers wait in threads: leave room for everyone else's events

def serve(argv=None):
    """`python app.py [--host ADDRESS] [--port PORT]`: Gradio's own variables (GRADIO_SERVER_NAME,
    GRADIO_SERVER_PORT) work too, as on a Space; by default every interface (a room on the same network can
    reach it) on port 7860."""
    import argparse

    parser = argparse.ArgumentParser(prog="python app.py", description="the sftviz web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                        help="address to listen on: 0.0.0.0 = every interface, 127.0.0.1 = this machine only")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    demo.queue(default_concurrency_limit=4, max_size=64).launch(server_name=args.host, server_port=args.port,
                                                                **LAUNCH)


if __name__ == "__main__":
    serve()
