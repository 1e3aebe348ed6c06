"""The page's logic, without gradio: every handler takes the page's form as one dict (elem_id -> value), turns
it into one `view.ViewRequest`, and returns a dict (elem_id -> new value) of just what changes. app.py lays
the components out and wires them to these functions; the tests call them directly.

A value that changes a component's settings as well (its choices, visibility, maximum) is `update(...)`, the
same dict gradio's own gr.update makes. Every failure becomes a one-line status in one place: `failed()`.
"""

import contextlib
import dataclasses
import functools
import html
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from urllib.parse import urlencode

from . import (bounded, clean_text, data, doctor, export, jobs, live, markers, model_loss, model_view, one_line, render,
               uploads, view, zerogpu)
from .labels import MAX_LENGTH_LIMIT, MODES, Options, mode_words, not_for, row_type
from .packing import STRATEGIES
from .engine import cpu_refusal
from .model_loss import SMOLLM2
from .plan import PRETRAINED_LR
from .train import MAX_MODEL_PARAMS, PRESETS, TrainConfig, check_model, preset_name, resolve_modes


def update(**props):
    """A component's new value and settings (gradio's gr.update makes the same dict)."""
    return {"__type__": "update", **props}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: samples are named from here
SAMPLES = list(data.samples())
DEFAULT_MODE = "auto"  # SFTConfig's own default: the page shows what it resolves to for the data
log = logging.getLogger("sftviz.page")
# Reading files and folders on the server from the page (Hub box, tokenizer, model fields) is for a private,
# local run only: the operator opts in with SFTVIZ_LOCAL_PATHS=1. Hosted, the page reaches bundled samples,
# the visitor's own uploads and Hub ids.
LOCAL_PATHS = os.environ.get("SFTVIZ_LOCAL_PATHS", "").lower() in ("1", "true", "yes")

# The page's form: what a (re)load reads. "source-tab" is which of sample / upload / Hub is in use, and
# "upload-path" the session's private copy of its upload (both server-side state).
FORM = ("source-tab", "sample", "upload-path", "hub-id", "columns", "text-field", "tokenizer", "prompt-template",
        "completion-template", "mode", "max-length", "packing", "packing-strategy", "trainer", "response-marker",
        "instruction-marker", "compare-with", "example-index")
# Browsing and training read the last good request instead ("view-request", server-side state).
NAV_FORM = ("view-request", "example-index")
TRAIN_FORM = ("view-request", "preset", "train-modes", "train-steps", "train-lr", "train-seed", "train-model",
              "train-weighted", "train-weight")
MODEL_FORM = ("view-request", "example-index", "model-choice")  # the real model's tab reads these
TEMPLATE_EDITOR = ("prompt-template", "completion-template", "apply-template", "template-preview")
DEFAULTS = Options(DEFAULT_MODE)  # SFTConfig's defaults (max_length, packing, text field), read from one place
DEFAULT_FORM = {"source-tab": "sample", "sample": data.DEFAULT_SAMPLE, "upload-path": None, "hub-id": "",
                "columns": data.READINGS["trl"], "text-field": DEFAULTS.text_field, "tokenizer": "default",
                "prompt-template": "", "completion-template": "", "mode": DEFAULT_MODE,
                "max-length": DEFAULTS.max_length, "packing": DEFAULTS.packing,
                "packing-strategy": DEFAULTS.packing_strategy, "trainer": "trl", "response-marker": "",
                "instruction-marker": "", "compare-with": "auto", "example-index": 0}


# --- From the form to one request ------------------------------------------------------------------

def clean_form(v):
    """The form as the browser (or a script) sent it, every text made valid (sftviz.clean_text): a lone surrogate
    in a text box would otherwise come back in a message that no page can carry."""
    return {k: clean_text(x) if isinstance(x, str) else x for k, x in v.items()}


def clean_out(out):
    """A handler's {elem_id: value} with every text valid (the last guard before the answer is encoded)."""
    def one(x):
        if isinstance(x, str):
            return clean_text(x)
        if isinstance(x, dict) and x.get("__type__") == "update" and isinstance(x.get("value"), str):
            return {**x, "value": clean_text(x["value"])}
        return x
    return {k: one(x) for k, x in out.items()}


def _text(v, name):
    """A text field of the form ("" when empty); anything but text (from the API) is refused in one line."""
    value = v.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name.replace('-', ' ')} must be text")
    return value


PAGE_MAX_LENGTH = int(os.environ.get("SFTVIZ_PAGE_MAX_LENGTH", 262_144))  # the CLI takes up to MAX_LENGTH_LIMIT


def _max_length(value):
    if value in (None, ""):
        return None
    if not float(value).is_integer():  # (a 20-digit whole number is a whole number too: too large, said below)
        raise ValueError("max_length must be a whole number of tokens (or empty for no truncation)")
    if float(value) > PAGE_MAX_LENGTH:
        raise ValueError(f"max_length is at most {PAGE_MAX_LENGTH:,} tokens on this page (empty: no truncation; "
                         f"the command line takes up to {MAX_LENGTH_LIMIT:,})")
    return int(value)


def _source(v):
    """(dataset, where, config, split) of the tab in use. The Hub box takes "ID [CONFIG [SPLIT]]", e.g.
    "openai/gsm8k main test". The upload is the session's own private copy (server-side state)."""
    if v["source-tab"] == "upload":
        if not v["upload-path"]:
            raise ValueError("no file uploaded in this session yet")
        return v["upload-path"], "file", None, "train"
    parts = _text(v, "hub-id")[:1000].split()
    if v["source-tab"] == "hub":
        if not parts:
            raise ValueError("type a Hub dataset id, e.g. openai/gsm8k main test")
        return parts[0], "any" if LOCAL_PATHS else "hub", parts[1] if len(parts) > 1 else None, \
            parts[2] if len(parts) > 2 else "train"
    if not _text(v, "sample"):
        raise ValueError(f"choose a bundled sample: {', '.join(SAMPLES)}")
    return v["sample"], "sample", None, "train"


def reading_name(value):
    """A reading's page label (or its name, from the API or a link) -> its name (data.decide refuses others)."""
    return next((k for k, label in data.READINGS.items() if value in (k, label)), value or "trl")


def mode_name(value):
    """A mode's page label (or its name, from the API) -> its name; anything else is left for Options to refuse."""
    return next((m.name for m in MODES.values() if value in (m.label, m.name)), value)


def mode_choices(first_row=None):
    """The mode radio's choices, (label, name), the TRL default first and showing what it resolves to for this
    data; only the modes that apply to it (labels.not_for), with a line saying why the others do not."""
    order = [DEFAULT_MODE, *(m for m in MODES if m != DEFAULT_MODE)]
    choices, left_out = [], []
    for name in order:
        why = not_for(name, first_row) if first_row is not None else None
        if why:
            left_out.append(f"{MODES[name].label}: {why}.")
        elif first_row is not None:
            choices.append((mode_words(name, first_row), name))
        else:
            choices.append(("TRL default" if name == DEFAULT_MODE else MODES[name].label, name))
    return choices, ("Not for this data: " + " ".join(left_out)) if left_out else None


def applicable(request):
    """The request with a mode that applies to its data (else the TRL default), and a line saying what changed:
    a mode chosen for other data is not kept where it would do nothing (or where TRL refuses it)."""
    mode = request.options.mode
    if mode == DEFAULT_MODE:
        return request, ""
    try:
        first = view.load(request).rows[0]
    except data.TRLStops as stop:  # TRL stops on the file as it is: its rows, as read, decide
        first = view.load(dataclasses.replace(request, columns=stop.fixes[0])).raw[0] if stop.fixes else {}
    why = not_for(mode, first)
    if not why:
        return request, ""
    options = dataclasses.replace(request.options, mode=DEFAULT_MODE)
    return dataclasses.replace(request, options=options), f"{MODES[mode].label} does not apply ({why}): the TRL " \
        f"default is shown."


def page_request(v):
    """The form -> a view.ViewRequest (bad values are refused here, with the core's words)."""
    source, where, config, split = _source(v)
    options = Options(mode_name(v["mode"]), _max_length(v["max-length"]), bool(v["packing"]),
                      _text(v, "packing-strategy") or "bfd", _text(v, "text-field").strip()[:200] or "text")
    compare = _text(v, "compare-with") if _text(v, "compare-with") in view.COMPARE else "auto"
    request = view.ViewRequest(source, where, _text(v, "tokenizer").strip()[:200] or "default",
                               "any" if LOCAL_PATHS else "hub", _text(v, "prompt-template") or None,
                               _text(v, "completion-template") or None, config, split, options,
                               reading_name(v["columns"]), compare)
    return with_markers(request, v)


def trainer_fields(options, choices, why_not):
    """The mode choice (TRL 1.16's: not used under another trainer) and the marker boxes (only under one)."""
    other = options.rules != "trl"
    return {"mode": update(choices=choices, value=options.mode, interactive=not other,
                           info=f"TRL 1.16's: not used by {markers.RULES[options.rules].label}" if other else why_not),
            "response-marker": update(value=options.response or "", visible=other),
            "instruction-marker": update(value=options.instruction or "", visible=other)}


def with_markers(request, v):
    """The request under the trainer the form names. A marker left empty is read from the tokenizer's chat
    template (markers.propose) and shown in its box, for chat data only; both are checked by Options."""
    rules = _text(v, "trainer") if _text(v, "trainer") in markers.RULES else "trl"
    if rules == "trl":
        return request
    response, instruction = _text(v, "response-marker") or None, _text(v, "instruction-marker") or None
    if not response or (rules == "unsloth" and not instruction):
        loaded = view.load(request)
        chat = row_type(loaded.rows[0]).startswith("conversational")
        proposed = (markers.propose(loaded.tok) if chat else None) or (None, None)
        if not response and not instruction or rules == "unsloth":
            instruction = instruction or proposed[0]
        response = response or proposed[1]
    if not response or (rules == "unsloth" and not instruction):
        raise ValueError(f"{markers.RULES[rules].label} needs the markers it searches for (read from the chat template "
                         f"only for chats): type the text that starts each answer, e.g. 'Answer:'"
                         + (", and the one that starts each question, e.g. 'Question:'" if rules == "unsloth" else ""))
    return dataclasses.replace(request, options=dataclasses.replace(request.options, rules=rules, response=response,
                                                                    instruction=instruction))


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
    if o.rules != "trl":
        q.update(trainer=o.rules, response=o.response, **({"instruction": o.instruction} if o.instruction else {}))
    return urlencode(q)


def failed(e):
    """Any failure as a one-line message (HTML) for the status box: the one place this is decided. The rest of
    the page keeps its last good view. A ZeroGPU refusal says what to do next."""
    refused_gpu = zerogpu.refusal(e)
    if refused_gpu:
        return render.error_html(refused_gpu)
    if not isinstance(e, ValueError):  # not a bad input we know: log it for the operator
        log.exception("unexpected error")
    return render.error_html(one_line(e))


def status_on_failure(handler, where="status"):
    """A handler whose failure (any exception) is shown as the one-line status (or in `where`), everything else
    unchanged."""
    @functools.wraps(handler)
    def safe(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except bounded.Replaced:  # this visitor's newer request answers instead
            return {where: update()}
        except Exception as e:  # noqa: BLE001  (bad input or not: one line, and the server goes on)
            return {where: failed(e)}
    return safe




# --- Handlers: form dict in, {elem_id: value} out --------------------------------------------------

@contextlib.contextmanager
def visitor(session):
    """Work done in this block is the visitor's (bounded.OWNER): their newer request replaces their older
    bounded work, and their jobs count against their quota (jobs.PER_VISITOR)."""
    token = bounded.OWNER.set(session)
    try:
        yield
    finally:
        bounded.OWNER.reset(token)


HEAVY_PER_S = float(os.environ.get("SFTVIZ_HEAVY_PER_S", 2))  # loads, first views and Train presses per second
HEAVY_BURST = 6  # ... after a burst of this many: a person clicks in bursts, a script keeps going
_buckets, _buckets_lock = OrderedDict(), threading.Lock()  # session -> (tokens, time): a token bucket each


class TooFast(ValueError):
    """A visitor asks for heavy work faster than HEAVY_PER_S: refused at once, before any work."""


def admit():
    """Let the current visitor (bounded.OWNER; none: the CLI, the tests) start heavy work, or raise TooFast. A
    visitor's script flooding loads or Train presses gets one-line refusals, and costs the server next to nothing."""
    session = bounded.OWNER.get()
    if session is None:
        return
    now = time.monotonic()
    with _buckets_lock:
        tokens, last = _buckets.pop(session, (HEAVY_BURST, now))
        tokens = min(HEAVY_BURST, tokens + (now - last) * HEAVY_PER_S)
        _buckets[session] = (tokens - (tokens >= 1), now)
        while len(_buckets) > 10_000:
            _buckets.popitem(last=False)
    if tokens < 1:
        jobs.POOL.demote(session)  # a script's flood: its work goes below everyone else's for a while
        raise TooFast(f"too many requests from this page at once (at most {HEAVY_PER_S:g} a second): wait a moment, "
                      f"then try again")


_refreshes = OrderedDict()  # (session, kind) -> how many redraws of that kind it has started (the newest answers)


def _start_refresh(kind="refresh"):
    """A ticket for this visitor's refresh (or other `kind` of redraw); still_newest(ticket) says whether a newer one
    of the same kind has started since (its answer then stands, not this one's)."""
    session = bounded.OWNER.get()
    if session is None:
        return None, 0
    key = (session, kind)
    with _buckets_lock:
        n = _refreshes.pop(key, 0) + 1
        _refreshes[key] = n
        while len(_refreshes) > 10_000:
            _refreshes.popitem(last=False)
    return key, n


def still_newest(ticket):
    key, n = ticket
    with _buckets_lock:
        return key is None or _refreshes.get(key, n) == n


def steps(updates, session):
    """A streaming handler's updates, each computed as the visitor's (a generator may resume in another thread)."""
    done = object()
    while True:
        with visitor(session):
            out = next(updates, done)
        if out is done:
            return
        yield out


def nothing():
    """What a handler with nothing to change answers (an empty answer is an error to Gradio)."""
    return {"status": update()}


# after a failed refresh: style.css greys the views under a status holding it
STALE = '<p class="sv-stale">Below, greyed: the last view that loaded, not these settings.</p>'


def refresh(v):
    """(Re)load data + labels; everything on the page is redrawn. On success the request becomes the
    session's "view-request": what Prev / Next / search / Train use, so a failed load keeps the last
    good view working."""
    ticket = _start_refresh()
    try:
        admit()
        request, changed = applicable(page_request(v))
        if request.options.rules == "trl" and (_text(v, "response-marker") or _text(v, "instruction-marker")):
            changed = (changed + " " if changed else "") + "Markers are searched only by TRL 0.19's collator and " \
                "Unsloth: pick one as the Trainer to use them."
        vw = view.open_view(request)
        index = max(0, min(int(v["example-index"] or 0), vw.n - 1))
        if isinstance(vw, view.Refused):
            return refused(request, vw, index, changed)
        out = view.example_views(vw, index)
        out["stats"], out["roles-plot"], out["length-plot"] = view.stats(vw)
        out.update(export_views(request, vw))
        try:
            out["doctor-report"] = render.doctor_html(view.findings(vw), len(vw.loaded.rows), "" if
                                                      view.covers_all(vw) else f"(The first {view.MAX_ROWS:,} rows; "
                                                      f"every row is being checked in the background.)",
                                                      len(vw.loaded.rows), request.options.packing)
        except bounded.BudgetExceeded as e:  # the labels are shown; only the doctor's check of them ran out of time
            out["doctor-report"] = render.error_html(f"The doctor: {e}.")
        out["doctor-progress"] = ""
        said = view.describe(vw) + ("\n\n⚠ " + changed if changed else "")
        out["status"] = f'<div class="sv-status">{_md(said)}</div>'
    except data.NeedsMapping as e:  # open the template editor so the user can map their columns
        return {"status": render.error_html(one_line(e)), **{k: update(visible=True) for k in TEMPLATE_EDITOR}}
    except bounded.Replaced:  # this visitor's newer request answers instead
        return nothing()
    except Exception as e:
        message = failed(e) + STALE
        if v["prompt-template"] or v["completion-template"]:  # also where the user is looking: under Apply
            return {"status": message, "template-preview": update(value=message, visible=True)}
        return {"status": message}
    mapping = vw.loaded.mapping
    row = 0 if request.options.packing else index
    choices, why_not = mode_choices(vw.loaded.rows[0])
    out.update({
        **columns_choice(request, vw.loaded.decision.offers),
        **trainer_fields(request.options, choices, why_not),
        "view-request": request,
        "example-index": update(value=index, maximum=max(vw.n - 1, 1), interactive=vw.n > 1),
        "count": f"{vw.n} {'packed row' if request.options.packing else 'example'}{'s' if vw.n != 1 else ''}",
        "prompt-template": update(value=mapping.prompt if mapping else "", visible=mapping is not None),
        "completion-template": update(value=mapping.completion if mapping else "", visible=mapping is not None),
        "apply-template": update(visible=mapping is not None),
        "template-preview": update(value=render.mapping_preview(vw.loaded.raw[row], vw.loaded.rows[row],
                                                                template_notes(v, mapping, vw.loaded.rows[row]))
                                      if mapping else "", visible=mapping is not None),
        "share": share_query(request, index),
    })
    if not still_newest(ticket):  # this visitor asked for another view meanwhile: that one answers, not this
        return nothing()
    return out


def template_notes(v, mapping, row):
    """What the template editor says under its preview: a box left empty gets the default (shown in the box), and
    the row's prompt and completion are checked as the doctor checks every row (glued, repeated)."""
    notes = [f"The {name} template was empty: the default `{text}` is used (edit it in the box above)."
             for name, key, text in (("prompt", "prompt-template", mapping.prompt),
                                     ("completion", "completion-template", mapping.completion))
             if not v.get(key) and (v.get("prompt-template") or v.get("completion-template"))]
    p, c = row.get("prompt"), row.get("completion")
    if isinstance(p, str) and isinstance(c, str) and p and c:
        if doctor.repeats_text(p, c):
            notes.append("⚠ The completion repeats the prompt (or the prompt the completion): the model would be "
                         "trained to copy what it was just given.")
        elif doctor.glued_text(p, c):
            notes.append("⚠ Prompt and completion join with no space or separator: TRL trains on them exactly as "
                         "joined.")
    return notes


def columns_choice(request, offers):
    """The "How to read your columns" choice: shown only where there is more than one way."""
    choices = [data.READINGS[k] for k in ("trl", *offers)]
    return {"columns": update(choices=choices, value=data.READINGS[request.columns], visible=len(choices) > 1)}


def refused(request, vw, index, changed=""):
    """TRL stops on the file as it is: its reason and the fixes (status), each fix's labels (Tokens tab),
    the doctor's error; nothing trained or exported until a fix is chosen. Browsing goes on over the fixes."""
    choices, why_not = mode_choices(vw.first_row)
    choices = [("TRL default (TRL stops on this file as it is)", n) if n == DEFAULT_MODE else (label, n)
               for label, n in choices]
    said = view.describe(vw) + ("\n\n⚠ " + changed if changed else "")
    return {**view.example_views(vw, index), **columns_choice(request, tuple(vw.fixes)),
            "mode": update(choices=choices, value=request.options.mode, info=why_not),
            "status": f'<div class="sv-status">{_md(said)}</div>', "view-request": request,
            "stats": "TRL stops on this file as it is: choose a fix to see its statistics.", "roles-plot": None,
            "length-plot": None, "doctor-report": render.doctor_html([view.stops_finding(vw)], vw.n),
            "doctor-progress": "",
            "export-script": f"# {vw.reason}\n# Choose a fix (How to read your columns) to export a run TRL accepts.",
            "export-yaml": "", "export-table": "",
            "example-index": update(value=index, maximum=max(vw.n - 1, 1), interactive=vw.n > 1),
            "count": f"{vw.n} example{'s' if vw.n != 1 else ''}", "share": share_query(request, index),
            **{k: update(visible=False) for k in TEMPLATE_EDITOR}}


def export_views(request, vw):
    """The hand-off: a TRL script, a `trl sft` YAML and other trainers' settings for what the page shows
    (under another trainer's rules, the TRL 1.16 settings closest to its labels, checked on the first rows).
    Files are named as the visitor knows them (a sample by its path in the sftviz repository)."""
    decision, first_row = vw.loaded.decision, vw.loaded.rows[0]
    if request.where == "sample":
        shown = os.path.relpath(data.samples()[request.source], ROOT)
    else:
        shown = os.path.basename(request.source) if request.where == "file" else None
    args = dict(mapping=decision.mapping, config=request.config, split=request.split, drop=decision.drop,
                first_row=first_row)
    return {"export-script": export.script(request.source, request.tokenizer, request.options, shown_path=shown,
                                           **args),
            "export-yaml": export.yaml_config(request.source, request.options, **args),
            "export-table": export.frameworks_table(request.options, first_row, "" if request.options.rules == "trl"
                                                    else view.migration(vw))}


@status_on_failure
def navigate(v, delta=0):
    """Only the per-example views of the last good view (index moved by `delta`): fast, from the cache."""
    request = v["view-request"]
    if request is None:
        return nothing()
    vw = view.open_view(request)
    index = max(0, min(int(v["example-index"] or 0) + delta, vw.n - 1))
    out = view.example_views(vw, index)
    return {**out, "example-index": index, "share": share_query(request, index)}


FINDING_EXAMPLE = re.compile(r"(\d{1,9}):((?:\d{1,9},){0,63}\d{1,9})?")  # "index:pos,pos", as render writes it


@status_on_failure
def open_finding(v):
    """A doctor finding's example (the button's "index:positions"), opened in the Tokens tab with the
    tokens it points at outlined."""
    request, chosen = v["view-request"], v["doctor-open"]
    if request is None or not chosen:
        return nothing()
    if not isinstance(chosen, str) or not FINDING_EXAMPLE.fullmatch(chosen):
        raise ValueError("that is not an example of a finding")
    index, positions = chosen.split(":")
    vw = view.open_view(request)
    index = max(0, min(int(index), vw.n - 1))
    out = view.example_views(vw, index, [int(p) for p in positions.split(",") if p])
    return {**out, "example-index": index, "share": share_query(request, index),
            "main-tabs": update(selected=view.EXAMPLE_TABS[0].elem_id)}


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


@status_on_failure
def find(v):
    """The next example whose text contains the search box's words."""
    if v["view-request"] is None:
        return nothing()
    vw = view.open_view(v["view-request"])
    return {"example-index": view.search(vw, v["search"], int(v["example-index"] or 0))}


def choose_source(kind):
    """A new dataset: start at its first example, with its own mapping template (not the last one's)."""
    return lambda: {"source-tab": kind, "example-index": 0, "prompt-template": "", "completion-template": "",
                    "columns": data.READINGS["trl"]}


@status_on_failure
def receive_upload(path, session, shown=None):
    """An upload goes into the session's private folder, in place of its earlier ones (their cached rows and
    labels go with them) except the one the page shows (`shown`: the last good view's request), which stays
    until a new view replaces it; the page keeps only the new path (server-side)."""
    keep = shown.source if shown is not None and shown.where == "file" else None
    older = set(uploads.previous(session)) - {keep}
    new = uploads.receive(path, session, keep)
    if older:
        view.forget(lambda source: source in older)
    return {"upload-path": new, **choose_source("upload")()}


def end_session(session):
    """The visitor left: their uploads and everything cached from them are deleted."""
    try:
        folder = uploads.discard(session)
    except uploads.UploadError:
        return
    view.forget(lambda source: str(source).startswith(folder + os.sep))


def preset_values(v):
    p = PRESETS[preset_name(v["preset"])]
    return {"train-steps": p["steps"], "train-lr": p["learning_rate"]}


PAGE_MAX_STEPS = int(os.environ.get("SFTVIZ_PAGE_MAX_STEPS", 5000))  # the CLI trains up to 20,000


def _number(value, name):
    if value in (None, ""):
        raise ValueError(f"{name} is empty")
    return value


def _steps(value):
    steps = _number(value, "steps")
    if isinstance(steps, (int, float)) and steps > PAGE_MAX_STEPS:
        raise ValueError(f"steps must be at most {PAGE_MAX_STEPS:,} on this page (a shared server; the command line "
                         f"trains up to 20,000: python -m sftviz train)")
    return steps


def train_stream(v, register=None):
    """Stream the loss curves while the runs train on the last good view's data (unpacked); generations
    and heatmap at the end. `register(watch)`: see live.train_updates."""
    try:
        admit()
        request = v["view-request"]
        if request is None:
            raise ValueError("load a dataset first")
        request = dataclasses.replace(request, options=dataclasses.replace(request.options, packing=False))
        vw = view.open_view(request)
        if isinstance(vw, view.Refused):
            raise ValueError(f"{vw.reason} Choose a fix under 'How to read your columns' first.")
        chosen = [mode_name(m) for m in (v["train-modes"] or [])]
        if "completion" in chosen and row_type(vw.loaded.rows[0]) == "language_modeling":
            raise ValueError("this data has no prompt/answer split, so answer only would train every token, the same "
                             "as whole text: open a sample with prompt/completion (or map your columns) to compare")
        model = check_model(v["train-model"], "any" if LOCAL_PATHS else "hub", MAX_MODEL_PARAMS)
        lr = _number(v["train-lr"], "lr")
        preset = preset_name(v["preset"])
        said = ""
        if model != "tiny":  # a pretrained model reads its own tokenizer's ids (as the model's tab shows them)
            if model == SMOLLM2 and not model_loss.converted():  # converted once, by the model's own loading
                yield {"train-status": '<div class="sv-summary">Preparing the offline SmolLM2 (~20 s, once)…</div>'}
                loading = model_loss.loading(SMOLLM2)
                if loading is None or not loading.done.wait(120) or loading.error:
                    raise ValueError(loading.error if loading and loading.error else "the offline SmolLM2 is not "
                                     "ready yet: try again in a minute")
            vw = view.open_view(model_view.model_request(request, model))
            if isinstance(vw, view.Refused):
                raise ValueError(f"with the model's tokenizer: {vw.reason}")
            if lr == PRESETS.get(preset, {}).get("learning_rate"):  # the tiny model's rate would wreck it
                lr = PRETRAINED_LR
                said = f" Learning rate {PRETRAINED_LR:g} (SFTConfig's default) for a pretrained model."
        cfg = TrainConfig.preset(preset, modes=resolve_modes(vw.loaded.rows, chosen),
                                 steps=_steps(v["train-steps"]), learning_rate=lr,
                                 seed=_number(v["train-seed"], "seed"), model=model,
                                 prompt_weight=_number(v["train-weight"], "prompt weight") if v["train-weighted"]
                                 else None)
        if model != "tiny" and not zerogpu.active() and zerogpu.device() == "cpu":
            raise ValueError(cpu_refusal(cfg, vw.prep.sequences.lengths) + ": the page trains the tiny model on a CPU "
                             "(model: tiny); python -m sftviz train --model ... --allow-slow runs it anyway")
        yield {"train-status": f'<div class="sv-summary">Preparing the runs…{html.escape(said)}</div>',
               "generations": "", "loss-heatmap": "", "train-verdict": ""}
        # The tiny model trains in the CPU workers on every host; a pretrained model on a ZeroGPU Space trains in
        # this visitor's own GPU call (sftviz.zerogpu), made here, in the web process, from their event.
        gpu = cfg.model != "tiny" and zerogpu.active()
        stream = live.train_updates_on_gpu(vw, cfg, register=register) if gpu else \
            live.train_updates(vw, cfg, register=register)
        with contextlib.closing(stream) as updates:
            for u in updates:
                out = {"held-out-plot": u.figures[0], "train-plot": u.figures[1],
                       "train-status": f'<div class="sv-summary">{html.escape(u.status)}</div>'}
                if u.generations is not None:
                    out.update({"generations": u.generations, "loss-heatmap": u.heatmap, "train-verdict": u.verdict})
                yield out
    except Exception as e:
        yield {"train-status": failed(e)}


def model_tab(v):
    """The real model's tab ("What the model already knows", sftviz.model_view) for the example shown, and the timer
    that asks again while the model loads (the load runs in a thread; nothing here waits for it)."""
    if v.get("model-open") is False:  # another tab is shown: nothing to draw (opening the tab redraws)
        return {"model-timer": update(active=False)}
    request = v["view-request"]
    choice = v.get("model-choice")
    if request is None or not isinstance(choice, (str, type(None))):
        return {"model-view": render.model_intro(), "model-timer": update(active=False)}
    index = v["example-index"] if isinstance(v["example-index"], (int, float)) else 0
    ticket = _start_refresh("model")
    try:
        html_out, loading = model_view.model_tab(request, index, choice, LOCAL_PATHS, admit)
    except bounded.Replaced:  # this visitor's newer request answers instead
        return {"model-timer": update()}
    if not still_newest(ticket):  # a timer's tick that started before Next's redraw must not overwrite it
        return {"model-timer": update()}
    return {"model-view": html_out, "model-timer": update(active=loading)}


def model_dataset(v):
    """The real model's mean loss per role over the first examples (model_view.dataset_watch): a background job with
    a progress bar, stopped when the visitor leaves."""
    try:
        request, name = v["view-request"], model_view.check(v.get("model-choice"), LOCAL_PATHS)
        if request is None or name is None:
            raise ValueError("pick a model first")
        watch, n, skipped = model_view.dataset_watch(request, name)
        done = 0
        with watch:
            for updates in watch.follow(0.5):
                done = updates[-1]["done"] if updates else done
                place = watch.place()
                yield {"model-dataset": render.progress_html(done, n, f"Running the model over {n} examples"
                                                             + (f" ({place})" if place else ""))}
            sums = watch.result
        mode = view.mode_words(view.open_view(model_view.model_request(request, name)))
        yield {"model-dataset": render.model_roles(sums, model_view.ROLES, n, skipped, model_view.display_name(name),
                                                   mode, model_view.MODEL_TOKENS)}
    except Exception as e:
        yield {"model-dataset": failed(e)}


URL_FIELDS = ("source-tab", "sample", "hub-id", "columns", "text-field", "tokenizer", "mode", "max-length", "packing",
              "packing-strategy", "trainer", "response-marker", "instruction-marker", "example-index")


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
            "mode": mode,
            "max-length": None if query.get("max_length") == "none" else _whole(query.get("max_length"),
                                                                                PAGE_MAX_LENGTH, 1024),
            "packing": query.get("packing") in STRATEGIES,
            "packing-strategy": query.get("packing") if query.get("packing") in STRATEGIES else "bfd",
            "trainer": query.get("trainer") if query.get("trainer") in markers.RULES else "trl",
            "response-marker": query.get("response", "")[:markers.MAX_MARKER_CHARS],
            "instruction-marker": query.get("instruction", "")[:markers.MAX_MARKER_CHARS],
            "example-index": update(value=index, maximum=max(index, 1))}


_first_views, _first_lock = OrderedDict(), threading.Lock()
_opened = OrderedDict()  # sessions that have opened a link (a page opens one)
FIRST_VIEWS = 32  # links whose first view is kept


LOADING_LINK = ('<div class="sv-status"><p>⏳ Opening this link: loading its data and labels (a few seconds; '
                'links opened before answer at once)…</p></div>')


def _first_key(query):
    fields = from_url({k: clean_text(v) for k, v in query.items() if isinstance(v, str)})
    return fields, tuple(sorted((k, repr(v)) for k, v in fields.items()))


def _copy(out):
    return {k: dict(v) if isinstance(v, dict) else v for k, v in out.items()}  # Gradio pops from update dicts


def _kept_first_view(key):  # under _first_lock: the kept view of a link, now the most recently used
    out = _first_views.get(key)
    if out is not None:
        _first_views.move_to_end(key)
    return out


def cached_first_view(query):
    """The first view of a link opened before (kept in memory), or None: never computes anything."""
    _, key = _first_key(query)
    with _first_lock:
        out = _kept_first_view(key)
    return _copy(out) if out is not None else None


def first_view(query):
    """Everything the page shows when it opens on a link (no link: the default view): computed once per
    link and then served from memory, so thirty students opening the page at once wait for nobody."""
    fields, key = _first_key(query)
    with _first_lock:
        out = _kept_first_view(key)
        session = bounded.OWNER.get()
        again = out is None and session is not None and session in _opened and fields != from_url({})
        if session is not None:
            _opened[session] = True
            while len(_opened) > 10_000:
                _opened.popitem(last=False)
    if again:  # a page opens one link; a script asking for new links on one page gets the default view
        return {**first_view({}), "status": render.error_html("This page has opened a link already: reload the "
                                                              "page to open another.")}
    if out is None:
        form = {**DEFAULT_FORM, **fields, "example-index": fields["example-index"]["value"]}
        out = {**fields, **refresh(form)}
        if isinstance(out["status"], dict):  # replaced by this visitor's newer request: nothing to show
            return out
        if "view-request" not in out and not any(k in out for k in TEMPLATE_EDITOR) and fields != from_url({}):
            # a link that does not load opens on the default view, under the link's message
            return {**first_view({}), "status": render.error_html(
                "This link's view could not be opened, so the default sample is shown; why:")
                + out["status"].replace(STALE, "")}
        if "view-request" in out:  # a view that loaded (a failed one is tried again by the next visitor)
            with _first_lock:
                _first_views[key] = out
                default = _first_key({})[1]
                while len(_first_views) > FIRST_VIEWS:  # the least recently opened link goes; never the default
                    oldest = next(iter(_first_views))
                    if oldest == default:
                        _first_views.move_to_end(oldest)
                        oldest = next(iter(_first_views))
                    del _first_views[oldest]
    return _copy(out)


def _md(text):
    """The status text's **bold** and `code` as HTML (everything else escaped)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return "".join(f"<p>{p}</p>" for p in out.split("\n\n"))
