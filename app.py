"""sftviz web app: lays out the Gradio components and wires them to sftviz.page (the page's logic).
Run: python app.py [--host ADDRESS] [--port PORT]

Every component is known by its elem_id. A handler in sftviz.page takes the page's form as one dict (elem_id ->
value) and returns a dict (elem_id -> new value) of just what changes; `Page.wire` turns one into a Gradio
handler. Importing this module builds the page and nothing more: the warm-up (torch, the default view) is a
step of `serve()`.
"""

import os
import re

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # asking whether there is CUDA must not start it here:
# the workers are forked from this process, and CUDA started before a fork cannot be used after it
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads must not spin (shared cores)
# Gradio's queue recomputes a pandas summary of its last 10,000 events after every event, for its monitoring
# dashboard (turned off here: LAUNCH): 30-50 ms of the server's CPU per click (benchmarks/bench_gradio_overhead.py).
# It never does here
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(10**12))
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "100")

import contextlib  # noqa: E402
import copy  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402

import gradio as gr  # noqa: E402

from sftviz import TRL_VERSION, data, lesson, lesson_page, model_view, page, palette, uploads, view  # noqa: E402
from sftviz.labels import MODES  # noqa: E402
from sftviz.markers import MAX_MARKER_CHARS, RULES  # noqa: E402
from sftviz.packing import STRATEGIES  # noqa: E402
from sftviz.page import DEFAULT_FORM, FORM, MODEL_FORM, NAV_FORM, TEMPLATE_EDITOR, TRAIN_FORM, URL_FIELDS  # noqa: E402
from sftviz.train import MAX_MODEL_PARAMS, PRESET_LABELS, PRESETS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSS_PATH = os.path.join(HERE, "assets", "style.css")
# Visitors watching trainings at once (a watcher only waits for its job's updates: the jobs themselves run in
# sftviz.jobs' worker processes, one per core, identical runs shared); more wait in Gradio's queue.
TRAIN_WATCHERS = int(os.environ.get("SFTVIZ_TRAIN_WATCHERS", 24))
# Sessions whose state Gradio keeps (its default 10,000: ~230 KB each here, 3 GB, and a full garbage collection of
# them froze every visitor for seconds); a page left idle longest is forgotten first (it reloads)
SESSIONS = int(os.environ.get("SFTVIZ_SESSIONS", 2000))
FOLLOW_S = 2  # seconds between a class page's questions (a student: where is the class? the teacher: the summary)
FIRST_VIEWS_AT_ONCE = 2  # links not opened before, computed at once (the rest wait in the queue)
PER_SESSION_QUEUED = int(os.environ.get("SFTVIZ_PER_SESSION_QUEUED", 8))  # events one page may have waiting
QUEUE_SIZE = 512  # events waiting in all (a class of 30 at PER_SESSION_QUEUED each stays far below)
log = logging.getLogger("sftviz.app")

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
only the labels differ. The plot scores every run on the **same held-out tokens**, never trained on: the answer
tokens (solid) and the prompt tokens (dotted). That is the fair comparison: lower is better. Each run's own training
loss is under *More*: it is averaged over *different* tokens (whole text: every token; answer only: the answer
tokens), so those curves are not comparable with each other."""

EXPLAIN_TRAIN_LOSS = """Each run's training loss is averaged over the tokens it trains on: every token for whole text, the
answer tokens for answer only. Prompts are easier or harder to predict than answers, so a lower curve here does not
mean a better model: compare the held-out plot above."""

# On a narrow screen (a phone) the settings start closed, so the tokens come first (gr.Accordion's open state is
# the same for every screen: its header is clicked once the page is drawn).
CLOSE_SETTINGS_ON_PHONE = """() => {
  if (window.innerWidth >= 700) return;
  let tries = 0;
  const close = () => {
    const header = document.querySelector('#settings > button.label-wrap');
    if (header) { if (header.classList.contains('open')) header.click(); }
    else if (tries++ < 100) setTimeout(close, 100);
  };
  close();
}"""

# A lesson step's tokens: a click picks or unpicks one (until the reveal gives them their roles).
TOGGLE_PICK = """element.addEventListener('click', (e) => {
  const b = e.target.closest('button.sv-pick');
  if (!b || b.dataset.role || b.disabled) return;
  if (b.closest('.sv-single')) b.closest('.sv-single').querySelectorAll('.sv-picked').forEach(o => {
    if (o !== b) { o.classList.remove('sv-picked'); o.setAttribute('aria-pressed', 'false'); } });
  b.classList.toggle('sv-picked');
  b.setAttribute('aria-pressed', b.classList.contains('sv-picked'));
});"""
PICKS = "(i, p, ...rest) => [i, Array.from(document.querySelectorAll('#lesson-tokens .sv-pick.sv-picked'))" \
        ".map(e => e.dataset.pos).join(','), ...rest]"
PICK_ALL = """() => { document.querySelectorAll('#lesson-tokens .sv-pick:not([data-role])').forEach(b => {
  b.classList.add('sv-picked'); b.setAttribute('aria-pressed', 'true'); }); }"""
CLEAR_PICKS = """() => { document.querySelectorAll('#lesson-tokens .sv-pick:not([data-role])').forEach(b => {
  b.classList.remove('sv-picked'); b.setAttribute('aria-pressed', 'false'); }); }"""

# A click on a finding's example button sends its "index:positions" with the doctor report's click event.
OPEN_ON_CLICK = """element.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-open]');
  if (b) trigger('click', {open: b.dataset.open});
});"""



def _signature(names, request=False):
    """A signature naming each form field, so the API (gradio_client) takes them by name; `request`: a last
    gr.Request parameter, which Gradio fills with the visitor's request."""
    params = [inspect.Parameter(n.replace("-", "_"), inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    if request:
        params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))
    return inspect.Signature(params)


def session_of(request):
    return request.session_hash if request else None


def with_request(handler, names, name):
    """`handler(*values, request)` with a signature naming each form field (the API takes them by name) and a
    last gr.Request parameter, which Gradio fills with the visitor's request."""
    handler.__signature__ = _signature(names, request=True)
    handler.__annotations__ = {"request": gr.Request}  # what Gradio reads to pass the request
    handler.__name__ = name  # the API endpoint's name
    return handler


class Page:
    """The components by elem_id, and the per-session state the wiring shares (what a closed tab must stop)."""

    def __init__(self):
        self.ui = {}  # elem_id -> component
        self.latest = {}  # session -> its latest view request: a full doctor pass for an older view stops
        self.watching = {}  # session -> its training watches: Stop and a closed tab close them

    def put(self, component):
        self.ui[component.elem_id] = component
        return component

    def to_ui(self, out):
        """{elem_id: value} -> {component: value}, what Gradio takes (every text valid: page.clean_out)."""
        return {self.ui[k]: val for k, val in page.clean_out(out).items()}

    def outputs(self, *names):
        return [self.ui[k] for k in names]

    def wire(self, fn, names, *args, **kwargs):
        """fn(form dict, *args) -> {elem_id: value}, as a Gradio handler over the named components, run as the
        visitor's (page.visitor: one bounded child per visitor, their jobs under their quota)."""
        def handler(*values):
            *values, request = values
            with page.visitor(session_of(request)):
                return self.to_ui(fn(page.clean_form(dict(zip(names, values))), *args, **kwargs))

        def streaming(*values):
            *values, request = values
            with contextlib.closing(fn(page.clean_form(dict(zip(names, values))), *args, **kwargs)) as updates:
                for out in page.steps(updates, session_of(request)):
                    yield self.to_ui(out)

        chosen = streaming if inspect.isgeneratorfunction(fn) else handler
        return with_request(chosen, names, fn.__name__), self.outputs(*names)

    def stop_training(self, session):
        for watch in self.watching.pop(session, set()):
            watch.close()


# --- Layout -------------------------------------------------------------------------------------------

def load_panel(p):
    """The left column: where the data comes from, how it is read, and the label options."""
    with gr.Tab("Sample"):
        p.put(gr.Dropdown(page.SAMPLES, value=DEFAULT_FORM["sample"], label="Bundled sample", elem_id="sample"))
    with gr.Tab("Upload"):
        p.put(gr.File(label=".jsonl .json .csv .parquet", file_types=list(data.EXTENSIONS), type="filepath",
                      elem_id="upload"))
    with gr.Tab("Hub"):
        p.put(gr.Textbox(label="Hub dataset: id [config [split]]", placeholder="e.g. openai/gsm8k main test",
                         elem_id="hub-id"))
        p.put(gr.Button("Load from Hub", elem_id="hub-load"))
    p.put(gr.Radio(list(data.READINGS.values()), value=DEFAULT_FORM["columns"], visible=False,
                   label="How to read your columns", elem_id="columns"))
    p.put(gr.Textbox("text", label="Text field (SFTConfig.dataset_text_field)", elem_id="text-field"))
    p.put(gr.Textbox("default", label="Tokenizer: 'default' (bundled, offline) or a Hub id", elem_id="tokenizer"))
    p.put(gr.Radio(page.mode_choices()[0], value=DEFAULT_FORM["mode"], label="What is trained (mode)",
                   elem_id="mode"))
    p.put(gr.Number(DEFAULT_FORM["max-length"], label="max_length (empty = none)", precision=0, elem_id="max-length"))
    p.put(gr.Dropdown([(r.label, r.name) for r in RULES.values()], value=DEFAULT_FORM["trainer"],
                      label="Trainer: whose labels", elem_id="trainer",
                      info="TRL 0.19's collator and Unsloth search the tokens for marker strings"))
    with gr.Row():
        p.put(gr.Textbox("", label="Response marker", placeholder="from the chat template", elem_id="response-marker",
                         visible=False, max_length=MAX_MARKER_CHARS))
        p.put(gr.Textbox("", label="Instruction marker", placeholder="from the chat template", visible=False,
                         elem_id="instruction-marker", max_length=MAX_MARKER_CHARS))
    with gr.Row():
        p.put(gr.Checkbox(False, label="Packing", elem_id="packing"))
        p.put(gr.Dropdown(list(STRATEGIES), value=DEFAULT_FORM["packing-strategy"], label="Packing strategy",
                          elem_id="packing-strategy"))
    p.put(gr.Textbox(label="Prompt template (Jinja, row columns as variables)", lines=3, visible=False,
                     elem_id="prompt-template"))
    p.put(gr.Textbox(label="Completion template", lines=1, visible=False, elem_id="completion-template"))
    p.put(gr.Button("Apply template", visible=False, size="sm", elem_id="apply-template"))
    p.put(gr.HTML(visible=False, elem_id="template-preview"))
    p.put(gr.Textbox(label="Link to this view (query string)", interactive=False, elem_id="share",
                     placeholder="(an uploaded file cannot be shared by link)", buttons=["copy"]))


def example_panel(p):
    """The status line, the example navigation, one tab per example view (view.EXAMPLE_TABS), then the others."""
    p.put(gr.HTML(WARMING_UP, elem_id="status"))
    with gr.Row(elem_id="nav"):
        p.put(gr.Button("◀ Prev", elem_id="prev", scale=0, min_width=80, size="md"))
        p.put(gr.Slider(0, 1, value=0, step=1, label="Example", elem_id="example-index", scale=3))
        p.put(gr.Markdown(elem_id="count"))
        p.put(gr.Button("Next ▶", elem_id="next", scale=0, min_width=80, size="md"))
        p.put(gr.Textbox(placeholder="search text…", label="Search the examples' text", show_label=False,
                         elem_id="search", scale=2))
    # whether the Real model tab is the one shown (wire_model); made outside the Tabs, where it would count as a tab
    p.ui["model-open"] = gr.State(False)
    with gr.Tabs(elem_id="main-tabs", overflow_behavior="wrap") as tabs:
        for tab in view.EXAMPLE_TABS:
            with gr.Tab(tab.title, id=tab.elem_id):
                if tab.elem_id == "mode-compare":  # what to put beside the labels on screen
                    p.put(gr.Dropdown([(words, key) for key, words in view.COMPARE.items()], value="auto",
                                      label="Compare the labels on screen with", elem_id="compare-with"))
                p.put(gr.HTML(tab.initial, elem_id=tab.elem_id))
                if tab.explain:
                    gr.Markdown(tab.explain)
        with gr.Tab(MODEL_TAB, id="model-tab"):
            p.put(gr.Dropdown(model_view.choices(), value=model_view.NONE, allow_custom_value=True,
                              label="A real pretrained model", elem_id="model-choice",
                              info="Runs it forward on the example shown (no training): its loss on every token. "
                                   "Pick one, or type a Hub id (at most "
                                   f"{MAX_MODEL_PARAMS / 1e6:.0f}M parameters)."))
            p.put(gr.HTML(model_view.intro(), elem_id="model-view"))
            p.ui["model-timer"] = gr.Timer(1, active=False)  # while the model loads: ask again every second
            p.put(gr.Button(f"Mean loss per role over the first {model_view.DATASET_ROWS} examples", size="sm",
                            elem_id="model-dataset-button"))
            p.put(gr.HTML(elem_id="model-dataset"))
        with gr.Tab("Train: whole vs answer", elem_id="train-tab"):
            train_tab(p)
        dataset_tabs(p)
    p.ui["main-tabs"] = tabs


def train_tab(p):
    """The paired training: settings, Train / Stop, the live curves, the generations and the heatmap."""
    answer = MODES["completion"]
    with gr.Row(elem_id="train-choices"):
        p.put(gr.Radio(list(PRESET_LABELS.values()), value=PRESET_LABELS["quick"], label="Preset", elem_id="preset"))
        p.put(gr.CheckboxGroup([m.label for m in MODES.values() if m.trainable],
                               value=[MODES["whole"].label, answer.label], label="Runs to compare",
                               info=f"For chat data, {answer.title} trains the assistant turns ({answer.on_chat}).",
                               elem_id="train-modes"))
    with gr.Row():
        p.put(gr.Number(PRESETS["quick"]["steps"], label="steps per run", precision=0, elem_id="train-steps"))
        p.put(gr.Number(PRESETS["quick"]["learning_rate"], label="learning rate", elem_id="train-lr"))
        p.put(gr.Number(0, label="seed", precision=0, elem_id="train-seed"))
        p.put(gr.Textbox("tiny", label="model", info="'tiny' (CPU), or pretrained: 'smollm2', a Hub id (GPU only)",
                         elem_id="train-model"))
    with gr.Row():
        p.put(gr.Checkbox(False, label="Add a third run: prompt loss weight w (not a TRL option)",
                          elem_id="train-weighted"))
        p.put(gr.Number(0.1, label="w (prompt tokens' weight, 0-1)", minimum=0, maximum=1, step=0.05,
                        elem_id="train-weight"))
    with gr.Row():
        p.put(gr.Button("Train", variant="primary", elem_id="train-button"))
        p.put(gr.Button("Stop", variant="secondary", elem_id="stop-button"))
    p.put(gr.HTML(elem_id="train-status"))
    p.put(gr.HTML(elem_id="train-verdict"))
    p.put(gr.Plot(elem_id="held-out-plot", show_label=False))
    gr.Markdown(EXPLAIN_TRAIN)
    with gr.Accordion("More: each run's own training loss (not comparable)", open=False, elem_id="more-train"):
        p.put(gr.Plot(elem_id="train-plot", show_label=False))
        gr.Markdown(EXPLAIN_TRAIN_LOSS)
    p.put(gr.HTML(elem_id="generations"))
    p.put(gr.HTML(elem_id="loss-heatmap"))
    with gr.Accordion("Prompt loss weight: what the studies found", open=False):
        gr.Markdown(EXPLAIN_WEIGHT, elem_id="explain-weight")


def dataset_tabs(p):
    """The whole dataset: statistics, the hand-off to a real run, the doctor."""
    with gr.Tab("Dataset stats"):
        p.put(gr.Markdown(elem_id="stats"))
        with gr.Row():
            p.put(gr.Plot(elem_id="roles-plot"))
            p.put(gr.Plot(elem_id="length-plot"))
    with gr.Tab("Export", id="export"):
        gr.Markdown("The settings shown here, for a real run: a TRL script (`python sft.py`, or "
                    "`accelerate launch sft.py` on several GPUs) and a `trl sft --config` file.")
        p.put(gr.Code(language="python", label="sft.py", elem_id="export-script"))
        p.put(gr.Code(language="yaml", label="config.yaml", elem_id="export-yaml"))
        p.put(gr.Markdown(elem_id="export-table"))
    with gr.Tab("Doctor", id="doctor"):
        p.put(gr.HTML(elem_id="doctor-progress"))
        p.put(gr.HTML(elem_id="doctor-report", js_on_load=OPEN_ON_CLICK))


def lesson_panel(p):
    """The lesson (/?lesson=sft, sftviz.lesson): a step's idea and question, its tokens to click, Check, the reveal."""
    gr.Markdown(f"# What does SFT train on? A lesson in {len(lesson.STEPS)} steps")
    p.put(gr.Markdown(elem_id="lesson-step"))
    p.put(gr.Markdown(elem_id="lesson-text"))
    # the training step's (style.css shows them only there)
    p.put(gr.Button("Train both runs", variant="primary", elem_id="lesson-train"))
    p.put(gr.HTML(elem_id="lesson-train-status"))
    p.put(gr.Plot(show_label=False, elem_id="lesson-plot"))
    p.put(gr.HTML(elem_id="lesson-tokens", js_on_load=TOGGLE_PICK))
    with gr.Row():
        p.put(gr.Button("Check", variant="primary", elem_id="lesson-check"))
        p.put(gr.Button("Pick all", size="sm", elem_id="lesson-all"))
        p.put(gr.Button("Clear", size="sm", elem_id="lesson-clear"))
        p.put(gr.Button("Try again", size="sm", elem_id="lesson-retry"))
    p.put(gr.HTML(elem_id="lesson-feedback"))
    with gr.Row():
        p.put(gr.Button("◀ Previous step", elem_id="lesson-prev"))
        p.put(gr.Button("Next step ▶", elem_id="lesson-next"))
    p.put(gr.HTML(elem_id="lesson-open"))
    p.put(gr.Number(0, visible="hidden", precision=0, elem_id="lesson-index"))
    p.put(gr.Textbox("", visible="hidden", elem_id="lesson-picks"))
    p.ui["lesson-timer"] = gr.Timer(FOLLOW_S, active=False)  # a class student's page asks where the class is


def teach_panel(p):
    """The teacher's view (/?teach=sft, sftviz.classroom): the class code and link, the live summary, and moving the
    class to a step."""
    gr.Markdown(f"# Teaching: what does SFT train on? ({len(lesson.STEPS)} steps)\nKeep this tab open: it is your "
                f"class. No names, no accounts: a student is an anonymous page.")
    p.put(gr.Markdown(elem_id="class-code"))
    p.put(gr.HTML(elem_id="class-link"))
    p.put(gr.HTML(elem_id="class-summary"))
    with gr.Row(equal_height=True):
        steps = lesson_page.step_choices()
        p.put(gr.Dropdown(steps, value=steps[0], label="Step", elem_id="class-step", scale=3))
        p.put(gr.Button("Move the class to this step", elem_id="class-move", scale=1))
    p.put(gr.HTML(elem_id="class-status"))
    p.ui["class-timer"] = gr.Timer(FOLLOW_S, active=False)


def layout(p):
    for state, value in (("source-tab", "sample"), ("upload-path", None), ("view-request", None),
                         ("first-served", False), ("lesson-class", None), ("lesson-moves", 0), ("lesson-curves", None),
                         ("class-state", None)):
        p.ui[state] = gr.State(value)  # per session, kept on the server: the API cannot set them
    # the teacher's class key, kept in their browser (never in the address: a projected page shows nothing to take)
    p.ui["class-key"] = gr.BrowserState("", storage_key="sftviz-teacher-class")
    with gr.Column(visible=False, elem_id="lesson") as lesson_column:
        lesson_panel(p)
    with gr.Column(visible=False, elem_id="teach") as teach_column:
        teach_panel(p)
    with gr.Column(elem_id="tool") as tool_column:
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Accordion("Whole text or only the answer? It depends on the data", open=False,
                          elem_id="shapes"):
            gr.Markdown(view.shapes_table())
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="load-panel"):
                with gr.Accordion("Settings: data, tokenizer, mode", open=True, elem_id="settings"):
                    load_panel(p)
            with gr.Column(scale=3, elem_id="results"):
                example_panel(p)
    p.ui["lesson"], p.ui["teach"], p.ui["tool"] = lesson_column, teach_column, tool_column


# --- Wiring -------------------------------------------------------------------------------------------

EXAMPLE_IDS = [tab.elem_id for tab in view.EXAMPLE_TABS]
FULL = ("status", "view-request", *EXAMPLE_IDS, "stats", "roles-plot", "length-plot", "doctor-report",
        "doctor-progress", "export-script", "export-yaml", "export-table", "example-index", "count", *TEMPLATE_EDITOR,
        "columns", "mode", "response-marker", "instruction-marker", "share")  # what a (re)load redraws
NAV = ("status", *EXAMPLE_IDS, "example-index", "share")  # what moving to another example redraws
NEW_SOURCE = ("source-tab", "example-index", "prompt-template", "completion-template", "columns")
UPDATE_URL = ("(q) => { const a = new URLSearchParams(location.search); "
              "if (q && !a.has('lesson') && !a.has('teach')) history.replaceState(null, '', '?' + q); }")
# (the lesson's and the teacher's addresses stay theirs)


MODEL_TAB = "Real model"


def model_then(p, form=MODEL_FORM + ("model-open",)):
    """The real model's tab, redrawn after anything that changes the example shown (its own queue: a forward pass
    never holds up Next), and while the model loads (its timer); only while the tab is open (model-open): a
    visitor who picked a model and went to another tab runs no forward pass per Next."""
    on_model, model_in = p.wire(page.model_tab, form)
    return dict(fn=on_model, inputs=model_in, outputs=p.outputs("model-view", "model-timer"), show_progress="hidden",
                concurrency_limit=2, concurrency_id="model", trigger_mode="always_last", api_name=False)


def wire_model(p):
    """A model picked (in the open tab; and through the API), the tab opened, or the timer while it loads: the
    model tab for the example shown."""
    p.ui["model-choice"].input(**{**model_then(p, MODEL_FORM), "api_name": "model_tab"})
    p.ui["model-timer"].tick(**model_then(p))

    def opened(evt: gr.SelectData):
        return evt.value == MODEL_TAB

    p.ui["main-tabs"].select(opened, None, p.ui["model-open"], queue=False, api_name=False).then(**model_then(p))
    on_dataset, dataset_in = p.wire(page.model_dataset, MODEL_FORM)
    p.ui["model-dataset-button"].click(on_dataset, dataset_in, p.outputs("model-dataset"), show_progress="hidden",
                                       concurrency_limit=None, api_name="model_dataset")


def wire_loading(p, demo):
    """A new source, reading, text field, tokenizer, mode, max_length, packing or template: a full (re)load,
    then the link in the address bar, then the doctor's pass over every row (a shared background job)."""
    on_refresh, form = p.wire(page.refresh, FORM)
    update_url = dict(fn=None, inputs=p.outputs("share"), outputs=None, js=UPDATE_URL)

    def on_full(request_value, request: gr.Request):
        session = session_of(request)
        p.latest[session] = request_value
        current = lambda: p.latest.get(session) is request_value  # noqa: E731
        said = False
        with contextlib.closing(page.full_doctor({"view-request": request_value}, current)) as updates:
            for out in page.steps(updates, session):
                said = True
                yield p.to_ui(out)
        if not said:  # a generator that yields nothing would blank its outputs: change nothing instead
            yield {p.ui["doctor-progress"]: gr.skip()}

    full_check = dict(fn=on_full, inputs=p.outputs("view-request"),
                      outputs=p.outputs("doctor-progress", "doctor-report", "stats", "length-plot"),
                      show_progress="hidden", concurrency_limit=None, api_name=False)

    def reload(event):
        return event.then(on_refresh, form, p.outputs(*FULL), show_progress="minimal").then(**update_url).then(
            **model_then(p)).then(**full_check)

    for trigger, kind in ((p.ui["sample"].input, "sample"), (p.ui["hub-load"].click, "hub")):
        reload(trigger(lambda choose=page.choose_source(kind): p.to_ui(choose()), None, p.outputs(*NEW_SOURCE),
                       queue=False))

    def upload(path, shown, request: gr.Request):
        return p.to_ui(page.receive_upload(path, session_of(request), shown))

    reload(p.ui["upload"].upload(upload, p.outputs("upload", "view-request"),
                                 p.outputs("upload-path", "status", *NEW_SOURCE), queue=False))
    # another reading of the columns starts from its own template (the last one's would imply a mapping)
    reload(p.ui["columns"].input(lambda: p.to_ui({"prompt-template": "", "completion-template": ""}), None,
                                 p.outputs("prompt-template", "completion-template"), queue=False))
    for trigger in (p.ui["text-field"].submit, p.ui["mode"].input, p.ui["packing"].input,
                    p.ui["packing-strategy"].input, p.ui["max-length"].submit, p.ui["tokenizer"].submit,
                    p.ui["trainer"].input, p.ui["response-marker"].submit, p.ui["instruction-marker"].submit,
                    p.ui["compare-with"].input,
                    p.ui["completion-template"].submit, p.ui["apply-template"].click):
        trigger(on_refresh, form, p.outputs(*FULL), show_progress="minimal").then(**update_url).then(
            **model_then(p)).then(**full_check)

    first_outputs = list(dict.fromkeys(p.outputs(*URL_FIELDS, *FULL)))

    def on_first_cached(request: gr.Request):
        """A link opened before (the default view above all) answers at once, outside the queue, from memory.
        The lesson (/?lesson=sft) hides the tool: nothing of it is computed."""
        if is_lesson(request):
            return {p.ui["first-served"]: True}
        out = page.cached_first_view(query_of(request))
        return {**p.to_ui(out), p.ui["first-served"]: True} if out else \
            {p.ui["status"]: page.LOADING_LINK, p.ui["first-served"]: False}

    def on_first(served, request: gr.Request):
        """A link not opened before is computed in the queue, a few at a time (FIRST_VIEWS_AT_ONCE): a script
        opening thousands of new links waits there, and the class's other events go on."""
        if served:
            return {p.ui["first-served"]: True}
        with page.visitor(session_of(request)):
            return p.to_ui(page.first_view(query_of(request)))

    demo.load(on_first_cached, None, first_outputs + [p.ui["first-served"]], queue=False,
              api_name="first_view_cached").then(
        on_first, p.ui["first-served"], first_outputs + [p.ui["first-served"]], api_name="first_view",
        concurrency_limit=FIRST_VIEWS_AT_ONCE, concurrency_id="first-view", show_progress="minimal").then(
        **update_url).then(**full_check)


def is_lesson(request):
    """Whether the page was opened as the lesson (/?lesson=sft) or the teacher's view (/?teach=sft): no tool."""
    query = query_of(request)
    return query.get("lesson") == "sft" or query.get("teach") == "sft"


def query_of(request):
    return {k: v for k, v in request.query_params.items()} if request else {}


def wire_browsing(p):
    """Prev / Next / the slider, a doctor finding's example, the search box: the per-example views only."""
    update_url = dict(fn=None, inputs=p.outputs("share"), outputs=None, js=UPDATE_URL)
    on_nav, nav_in = p.wire(page.navigate, NAV_FORM)
    p.ui["example-index"].input(on_nav, nav_in, p.outputs(*NAV), show_progress="hidden", trigger_mode="always_last",
                                api_name="goto").then(**update_url).then(**model_then(p))
    for button, delta in (("prev", -1), ("next", 1)):
        fn, _ = p.wire(page.navigate, NAV_FORM, delta=delta)
        p.ui[button].click(fn, nav_in, p.outputs(*NAV), show_progress="hidden", queue=False, api_name=button).then(
            **update_url).then(**model_then(p))

    def on_open(request_value, event: gr.EventData, request: gr.Request):
        sent = getattr(event, "_data", None)  # what the button's trigger('click', {open: ...}) sent
        with page.visitor(session_of(request)):
            return p.to_ui(page.open_finding({"view-request": request_value,
                                              "doctor-open": sent.get("open") if isinstance(sent, dict) else None}))

    p.ui["doctor-report"].click(on_open, p.outputs("view-request"), p.outputs(*NAV, "main-tabs"),
                                show_progress="hidden", api_name="open_finding").then(**update_url).then(
        **model_then(p))
    on_find, find_in = p.wire(page.find, NAV_FORM + ("search",))
    p.ui["search"].submit(on_find, find_in, p.outputs("status", "example-index")).then(
        on_nav, nav_in, p.outputs(*NAV)).then(**update_url).then(**model_then(p))


def training_handler(p, fn, names, api_name):
    """A streaming Train handler over the named form fields: its watches are the session's, so Stop and a closed tab
    end them, and a new press replaces the visitor's last one (one training per visitor; it ends Stopped)."""
    def on_train(*args):  # the form's values, then the gr.Request (see with_request)
        values, request = args[:-1], args[-1]
        session = session_of(request)
        p.stop_training(session)
        own = set()  # this press's watches (also listed under the session, for Stop and a closed tab)

        def register(watch):
            own.add(watch)
            p.watching.setdefault(session, set()).add(watch)

        try:
            with contextlib.closing(fn(page.clean_form(dict(zip(names, values))), register)) as updates:
                for out in page.steps(updates, session):
                    yield p.to_ui(out)
        finally:
            for watch in own:
                watch.close()
                p.watching.get(session, set()).discard(watch)
            if not p.watching.get(session, True):  # (a script never unloads: leave nothing behind per session)
                p.watching.pop(session, None)

    return with_request(on_train, names, api_name)


def wire_training(p):
    """Train streams the curves; Stop acts at once, outside the queue; a preset fills in its steps and learning
    rate."""
    on_train = training_handler(p, page.train_stream, TRAIN_FORM, "train_stream")
    p.ui["train-button"].click(on_train, p.outputs(*TRAIN_FORM),
                               p.outputs("held-out-plot", "train-plot", "train-status", "generations",
                                         "loss-heatmap", "train-verdict"),
                               concurrency_limit=TRAIN_WATCHERS, concurrency_id="training", show_progress="full")

    def stop(request: gr.Request):  # the session's runs stop being watched; their streams end with "Stopped"
        p.stop_training(request.session_hash if request else None)

    p.ui["stop-button"].click(stop, None, None, queue=False)
    on_preset, preset_in = p.wire(page.preset_values, ("preset",))
    p.ui["preset"].input(on_preset, preset_in, p.outputs("train-steps", "train-lr"), queue=False)


LESSON_VIEW = ("lesson-index", "lesson-step", "lesson-text", "lesson-tokens", "lesson-feedback", "lesson-picks",
               "lesson-open")


def wire_lesson(p, demo):
    """/?lesson=sft shows the lesson instead of the tool (with &class=CODE the student joins a class, whose page then
    follows the teacher's moves); /?teach=sft shows the teacher's view. Steps move with Previous / Next; Check sends
    the picks (read from the page by PICKS) and reveals; the training step's Train streams its two runs."""
    def on_open(saved_key, request: gr.Request):
        query = query_of(request)
        if query.get("teach") == "sft":
            with page.visitor(session_of(request)):
                out = lesson_page.in_class(lesson_page.teach_open)(base_url(request), address_of(request),
                                                                   saved_key if isinstance(saved_key, str) else None)
            return {p.ui["teach"]: gr.update(visible=True), p.ui["tool"]: gr.update(visible=False),
                    p.ui["class-timer"]: gr.Timer(active=True), **p.to_ui(out)}
        if not is_lesson(request):
            return {p.ui["lesson"]: gr.update(visible=False)}
        with page.visitor(session_of(request)):
            out = lesson_page.lesson_open(query, address_of(request))
        return {p.ui["lesson"]: gr.update(visible=True), p.ui["tool"]: gr.update(visible=False),
                p.ui["lesson-timer"]: gr.Timer(active=bool(out.get("lesson-class"))), **p.to_ui(out)}

    demo.load(on_open, p.outputs("class-key"), p.outputs("lesson", "teach", "tool", "lesson-timer", "class-timer", *LESSON_VIEW,
                                       "lesson-class", "lesson-moves", "class-code", "class-link", "class-summary",
                                       "class-state", "class-status", "class-key"),
              queue=False, api_name="lesson_open")
    form = lesson_page.LESSON_FORM
    for button, delta in (("lesson-prev", -1), ("lesson-retry", 0), ("lesson-next", 1)):
        fn, inputs = p.wire(lesson_page.lesson_step, form, delta=delta)
        p.ui[button].click(fn, inputs, p.outputs(*LESSON_VIEW), queue=False, api_name=button.replace("-", "_"))

    def on_check(index, picks, code, curves, request: gr.Request):
        with page.visitor(session_of(request)):
            return p.to_ui(lesson_page.lesson_check(page.clean_form(
                {"lesson-index": index, "lesson-picks": picks, "lesson-class": code}), curves))

    p.ui["lesson-check"].click(on_check, p.outputs(*form, "lesson-curves"),
                               p.outputs("lesson-tokens", "lesson-feedback", "lesson-plot"), js=PICKS,
                               queue=False, api_name="lesson_check")
    p.ui["lesson-all"].click(None, None, None, js=PICK_ALL)
    p.ui["lesson-clear"].click(None, None, None, js=CLEAR_PICKS)
    on_train = training_handler(p, lesson_page.lesson_train, form, "lesson_train")
    p.ui["lesson-train"].click(on_train, p.outputs(*form), p.outputs("lesson-plot", "lesson-train-status",
                                                                      "lesson-curves"),
                               concurrency_limit=TRAIN_WATCHERS, concurrency_id="training", show_progress="hidden")
    fn, inputs = p.wire(lesson_page.lesson_follow, ("lesson-index", "lesson-class", "lesson-moves"))
    p.ui["lesson-timer"].tick(fn, inputs, p.outputs(*LESSON_VIEW, "lesson-moves"), queue=False,
                              show_progress="hidden", api_name="lesson_follow")
    fn, inputs = p.wire(lesson_page.teach_summary, ("class-state",))
    p.ui["class-timer"].tick(fn, inputs, p.outputs("class-summary", "class-status"), queue=False,
                             show_progress="hidden", api_name="class_summary")
    fn, inputs = p.wire(lesson_page.teach_move, ("class-state", "class-step"))
    p.ui["class-move"].click(fn, inputs, p.outputs("class-summary", "class-status"), queue=False,
                             api_name="class_move")


def base_url(request):
    """The page's own address as its visitor reached it (behind a Space's proxy too): the students' link's start.
    Headers are the visitor's words: only http(s) and a plain host name are taken, else the server's own."""
    headers = request.headers if request else {}
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    scheme = (headers.get("x-forwarded-proto") or (request.url.scheme if request else "")).split(",")[0].strip()
    if not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?", host):
        host = "localhost:7860"
    return f"{scheme if scheme in ('http', 'https') else 'http'}://{host}/"


def address_of(request):
    """The visitor's address, as the server sees it (a class's limits per address)."""
    return request.client.host if request and request.client else None


def build():
    """The page: its layout, then its events. Nothing is loaded or labelled here."""
    p = Page()
    # Gradio's own temp files (an upload posted to its /upload but never used, outputs) go after 10 minutes; the
    # page's uploads are moved out at once (sftviz.uploads)
    with gr.Blocks(title="sftviz — what does SFT train on?", delete_cache=(60, 600)) as demo:
        layout(p)
        wire_loading(p, demo)
        wire_browsing(p)
        wire_model(p)
        wire_training(p)
        wire_lesson(p, demo)

        def leave(request: gr.Request):  # a closed tab: its doctor pass, trainings and uploads go
            p.latest.pop(request.session_hash, None)
            p.stop_training(request.session_hash)
            page.end_session(request.session_hash)

        demo.unload(leave)
    return demo


def warm_up():
    """Ahead of the first visitor: import torch in the main thread, before anything is forked (the first Train
    click then starts at once, and no child maps torch's libraries under its memory budget), then compute the
    default view in a thread: the server answers meanwhile, and a page opened now says it is warming up and
    gets the same computation when it is done (view's caches join a computation in progress)."""
    view.import_training_stack()

    def default_view():
        try:
            view.warm(page.page_request(DEFAULT_FORM))
            page.first_view({})
        except Exception:  # noqa: BLE001  (the first visitor then computes it, and sees any error)
            log.exception("warming up the default view")

    threading.Thread(target=default_view, name="sftviz-warm-up", daemon=True).start()


demo = build()
LAUNCH = dict(theme=gr.themes.Default(primary_hue=palette.ACCENT_HUE), css=palette.css(), css_paths=[CSS_PATH],
              js=CLOSE_SETTINGS_ON_PHONE, footer_links=["gradio"], run_history=False,
              max_file_size=f"{uploads.MAX_MB}mb",
              max_threads=64,  # training watchers wait in threads: leave room for everyone else's events
              enable_monitoring=False,  # Gradio's /monitoring dashboard (on by default): not for a class's visitors
              state_session_capacity=SESSIONS)


def cap_per_session(queue, most=None):
    """Refuse a page's event while it already has `most` (PER_SESSION_QUEUED) events waiting in Gradio's queue:
    one visitor's script cannot fill the queue (and give every other visitor HTTP 503 "Queue is full"); it gets
    a one-line refusal of its own instead. Gradio's queue has no such setting: its push() is wrapped."""
    most = most or PER_SESSION_QUEUED
    push = queue.push

    async def capped(body, request, username):
        session = body.session_hash
        if session is not None:
            waiting = sum(e.session_hash == session for q in queue.event_queue_per_concurrency_id.values()
                          for e in q.queue)
            if waiting >= most:
                return False, (f"This page already has {waiting} requests waiting: wait for them to finish "
                               f"(at most {most} per visitor)."), "error"
        return await push(body, request, username)

    queue.push = capped


SKIP = gr.skip()  # {"__type__": "update"}: "leave this output as it is"


def skip_untouched(blocks):
    """Send the outputs a handler leaves out of its dict as they are, with no work. Gradio fills each with
    gr.skip() and then treats it as any update: it rebuilds the component and its config for the session (~1 ms
    each), to send back the same bare skip. A refresh has 25 outputs, so a refused one cost the server 30 ms,
    most of its time under a script's flood (benchmarks/bench_gradio_overhead.py). The outputs the handler did return go
    through Gradio's own postprocess_data, unchanged."""
    original = blocks.postprocess_data

    async def postprocess_data(block_fn, predictions, state):
        outputs = block_fn.outputs
        ids = {b._id for b in outputs}
        if (block_fn.batch or block_fn.is_validator_function or len(outputs) < 2 or len(ids) < len(outputs)
                or not isinstance(predictions, dict) or not predictions
                or not all(isinstance(k, gr.blocks.Block) and k._id in ids for k in predictions)):
            return await original(block_fn, predictions, state)  # (and Gradio's own error for a wrong key)
        given = {k._id: v for k, v in predictions.items() if not (isinstance(v, dict) and v == SKIP)}
        touched = [b for b in outputs if b._id in given]
        done = iter([])
        if touched:
            only = copy.copy(block_fn)
            only.outputs = touched
            values = [given[b._id] for b in touched]
            done = iter(await original(only, values if len(touched) > 1 else values[0], state))
        return [next(done) if b._id in given else skipped(b) for b in outputs]

    def skipped(block):  # what Gradio sends for a skip: None for a State (kept on the server), else the bare
        # update (an HTML's also under "props": Gradio passes on what HTML's constructor does not take)
        return None if block.stateful else {"props": dict(SKIP), **SKIP} if isinstance(block, gr.HTML) else dict(SKIP)

    blocks.postprocess_data = postprocess_data


def start(host="0.0.0.0", port=None, **launch):
    """Queue (per-session cap included) and launch the page: what serve() and the tests' server do."""
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    cap_per_session(demo._queue)
    skip_untouched(demo)
    demo.launch(server_name=host, server_port=port, **LAUNCH, **launch)
    return demo


def serve(argv=None):
    """`python app.py [--host ADDRESS] [--port PORT]`: warm up, then serve. Gradio's own variables
    (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT) work too, as on a Space; by default every interface (a room on the
    same network can reach it) on port 7860."""
    import argparse

    parser = argparse.ArgumentParser(prog="python app.py", description="the sftviz web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                        help="address to listen on: 0.0.0.0 = every interface, 127.0.0.1 = this machine only")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    warm_up()
    uploads.start_sweeper()
    start(args.host, args.port)


if __name__ == "__main__":
    serve()
