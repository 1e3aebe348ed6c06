"""The lesson's and the class's handlers (/?lesson=sft, /?teach=sft), without gradio: as sftviz.page's, the form as
one dict in, {elem_id: value} out, every failure one line (in the lesson's own message line, or the teacher's).
The steps are sftviz.lesson's, a class is sftviz.classroom's.
"""

import contextlib
import functools
import html
import threading
import urllib.parse
from collections import OrderedDict

from . import bounded, classroom, lesson, live, plots, render, view
from .page import admit, failed, share_query, status_on_failure, update
from .train import TrainConfig

in_lesson = functools.partial(status_on_failure, where="lesson-feedback")  # the lesson's own message line
in_class = functools.partial(status_on_failure, where="class-status")  # the teacher's


# --- The lesson: sftviz.lesson's steps, one at a time; in a class, each step and answer is told to the teacher ------

LESSON_FORM = ("lesson-index", "lesson-picks", "lesson-class")
LESSON_SEED = 1  # the training step's seed: every student's press is the same run, shared (a class is one job)


def _lesson_example(k):
    """(step, its example's Sequence unpadded, token texts, its request, its view) from the label engine."""
    step = lesson.STEPS[k]
    request = view.ViewRequest(step.sample, "sample", options=step.options)
    vw = view.open_view(request)
    return step, vw.prep.sequences[step.index], vw.token_texts(step.index), request, vw


def _hunt_examples(vw):
    return [(vw.prep.sequences[i], vw.token_texts(i)) for i in range(len(vw.prep.sequences))]


_revealed, _revealed_lock = OrderedDict(), threading.Lock()  # session -> True once it pressed Check in the training
# step: the training's stream then shows the runs' names


def _reveal(session, shown):
    if session is None:
        return
    with _revealed_lock:
        _revealed.pop(session, None)
        if shown:
            _revealed[session] = True
            while len(_revealed) > 10_000:
                _revealed.popitem(last=False)


def _class_of(v):
    """The student's class code (a server-side State, set when they opened the class link), or None."""
    return v.get("lesson-class") or None


@in_lesson
def lesson_step(v, delta=0):
    """Step (lesson-index + delta): its idea and question, its tokens without their roles, the link to the tool.
    In a class, the student's place is told to the teacher's summary."""
    k = lesson.step_number(v.get("lesson-index") or 0)
    k = max(0, min(k + delta, len(lesson.STEPS) - 1))
    out = _lesson_view(k)
    _reveal(bounded.OWNER.get(), False)  # a step (again): the training's runs are letters until the next Check
    code = _class_of(v)
    if code:
        with contextlib.suppress(classroom.Refused):  # a class that ended: the lesson goes on without it
            classroom.CLASSES.at(code, bounded.OWNER.get(), k)
    return out


def _lesson_view(k):
    step, seq, texts, request, vw = _lesson_example(k)
    if step.kind == "runs":
        picks = render.lesson_runs_html(k)
    elif step.kind == "hunt":
        picks = render.lesson_hunt_html(k, _hunt_examples(vw))
    else:
        picks = render.lesson_tokens_html(texts, k)
    link = share_query(request, step.index)
    return {"lesson-index": k, "lesson-step": f"### Step {k + 1} of {len(lesson.STEPS)}: {step.title}",
            "lesson-text": f"{step.idea}\n\n{step.question}", "lesson-tokens": picks,
            "lesson-feedback": "", "lesson-picks": "",
            "lesson-open": f'<a href="?{html.escape(link)}" target="_blank" rel="noopener">Open this example in '
                           f'the full tool</a> (the same data and settings).'}


@in_lesson
def lesson_check(v, curves=None):
    """The reveal: the tokens with their roles (as the Tokens tab shows them), and how the picks compare; in the
    training step, which run was which (the plot gets its real names, from `curves`: the student's last training
    update); in the bug hunt, the doctor's findings. In a class, the answer is told to the teacher's summary."""
    k = lesson.step_number(v.get("lesson-index"))
    step, seq, texts, _, vw = _lesson_example(k)
    out = {}
    if step.kind == "runs":
        picks = lesson.picks_of(v.get("lesson-picks") or "", 2)
        letters = lesson.run_letters(bounded.OWNER.get())
        right, lines = lesson.runs_feedback(picks, letters)
        wrong = ["the whole-text run" for p in picks if "AB"[p] != letters["completion"]]  # (letters differ)
        out["lesson-tokens"] = render.lesson_runs_html(k, set(picks), letters)
        _reveal(bounded.OWNER.get(), True)  # a training still streaming goes on with the real names
        if curves:
            out["lesson-plot"] = plots.held_out_figure(*curves)
    elif step.kind == "hunt":
        examples = _hunt_examples(vw)
        picks = lesson.picks_of(v.get("lesson-picks") or "", len(examples))
        broken = lesson.broken_examples(view.findings(vw))
        right, lines = lesson.hunt_feedback(picks, broken)
        wrong = [f"example {p + 1}" for p in picks if p not in broken]
        out["lesson-tokens"] = render.lesson_hunt_html(k, examples, set(picks), broken)
    else:
        picks = lesson.picks_of(v.get("lesson-picks") or "", len(texts))
        found = lesson.check(seq, picks)
        right, lines = found.right, lesson.feedback_words(found, seq, texts)
        wrong = [repr(texts[t]) for t in found.wrong]
        out["lesson-tokens"] = render.lesson_tokens_html(texts, k, set(picks), seq.roles)
    out["lesson-feedback"] = render.lesson_feedback_html(lines, step.why, right)
    code = _class_of(v)
    if code:
        with contextlib.suppress(classroom.Refused):
            classroom.CLASSES.checked(code, bounded.OWNER.get(), k, right, wrong)
    return out


def lesson_train(v, register=None):
    """The training step: the class preset's two runs (whole text, answer only) on the step's sample, streamed as
    "Run A" / "Run B" (sftviz.lesson.run_letters: which is which differs between students) until the reveal. Every
    student's press is the same run (the same seed): a class trains once, and a late press joins it."""
    try:
        admit()
        k = lesson.step_number(v.get("lesson-index"))
        step = lesson.STEPS[k]
        if step.kind != "runs":
            raise ValueError("this step has no training: go to the step 'Which curve is which?'")
        vw = view.open_view(view.ViewRequest(step.sample, "sample", options=step.options))
        cfg = TrainConfig.preset("class", modes=lesson.RUNS, seed=LESSON_SEED)
        letters = lesson.run_letters(bounded.OWNER.get())
        yield {"lesson-train-status": '<div class="sv-summary">Preparing the runs…</div>'}
        with contextlib.closing(live.train_updates(vw, cfg, register=register, draw=lambda *_: ())) as updates:
            for u in updates:
                shown = {m: {key: list(points) for key, points in c.items()} for m, c in u.curves.items()}
                named = _revealed.get(bounded.OWNER.get())
                yield {"lesson-plot": plots.held_out_figure(shown, cfg.steps, None if named else letters),
                       "lesson-train-status": f'<div class="sv-summary">{html.escape(u.status)}</div>',
                       "lesson-curves": (shown, cfg.steps)}
    except Exception as e:
        yield {"lesson-train-status": failed(e)}


# --- A class (/?teach=sft for the teacher, /?lesson=sft&class=CODE for the students): sftviz.classroom ------------

@in_lesson
def lesson_open(query, address=None):
    """The lesson's first view; with ?class=CODE the student joins that class (and starts where the teacher moved
    it). A wrong or ended code says so in one line, and the lesson goes on without a class."""
    out = {**_lesson_view(0), "lesson-class": None, "lesson-moves": 0}
    code = query.get("class")
    if code:
        try:
            code, moves, k = classroom.CLASSES.join(code, bounded.OWNER.get(), address)
        except classroom.Refused as e:
            out["lesson-feedback"] = failed(e)
            return out
        out.update(_lesson_view(k), **{"lesson-class": code, "lesson-moves": moves})
        out["lesson-feedback"] = f'<div class="sv-summary">You are in class {html.escape(code)}: the teacher ' \
                                 f'can move the class to a step; you can still go back.</div>'
    return out


def lesson_follow(v):
    """A class student's page, every few seconds: to the teacher's step when the teacher moved the class since
    (lesson-moves); else (or on any failure: a timer must not pop errors) nothing changes."""
    code, unchanged = _class_of(v), {"lesson-moves": update()}
    if not code:
        return unchanged
    try:
        moves, k = classroom.CLASSES.where(code, bounded.OWNER.get())
        if moves <= (v.get("lesson-moves") or 0):
            return unchanged
        out = {**_lesson_view(k), "lesson-moves": moves}
        classroom.CLASSES.at(code, bounded.OWNER.get(), k)
        return out
    except Exception:  # noqa: BLE001  (a class that ended, a view being replaced: the next tick tries again)
        return unchanged


def on_this_computer_only(url):
    """Whether a link's host is this computer's own name (localhost, 127.x, ::1, 0.0.0.0): another device that
    opens it reaches itself, not this server."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1", "0.0.0.0") or host.endswith(".localhost") or host.startswith("127.")


def teach_open(base_url="", address=None, key=None):
    """The teacher's view: their class (the one whose key their browser kept, after a reload; else a new one), its
    code, the students' link, and the key (the browser keeps it: a reload keeps the class). A link built from a
    page opened at localhost says that students cannot use it, and what to open instead."""
    cls = classroom.CLASSES.open(bounded.OWNER.get(), key, address)
    link = f"{base_url}?lesson=sft&class={cls.code}"
    local = ('<p class="sv-finding" data-severity="warning">⚠ This link points at this computer (you opened the page at '
             f'{html.escape(urllib.parse.urlsplit(link).netloc)}): a student\'s device cannot open it. Open this page '
             "at the address students can reach, e.g. <code>http://192.168.1.20:7860/?teach=sft</code> (this "
             "machine's address on the room's network), or the Space's URL.</p>") if on_this_computer_only(link) else ""
    return {"class-code": f"## Class code: `{cls.code}`", "class-state": cls.code, "class-key": cls.key,
            "class-link": f'<p>Students open <a href="{html.escape(link)}" target="_blank" rel="noopener">'
                          f'{html.escape(link)}</a>, or scan:</p>{local}{render.qr_html(link)}',
            **teach_summary({"class-state": cls.code})}


@in_class
def teach_summary(v):
    """The class's live summary: per step, students there now, Checks, the share right, the commonest wrong pick."""
    code = v.get("class-state")
    if not code:
        raise ValueError("open /?teach=sft to start a class")
    said = classroom.CLASSES.summary(code, bounded.OWNER.get(), len(lesson.STEPS))
    return {"class-summary": render.class_summary_html(said, [s.title for s in lesson.STEPS]), "class-status": ""}


@in_class
def teach_move(v):
    """Move the class to a step: every student's page follows within a few seconds."""
    code = v.get("class-state")
    k = lesson.step_number(_step_choice(v.get("class-step")))
    classroom.CLASSES.move(code or "", bounded.OWNER.get(), k)
    return teach_summary(v)


def _step_choice(value):
    """'3. Title' (the dropdown's choice) or 3 -> the step index 2; anything else -> -1 (refused by step_number)."""
    text = str(value or "").split(".", 1)[0].strip()
    return int(text) - 1 if text.isdigit() and len(text) < 4 else -1


def step_choices():
    return [f"{k + 1}. {s.title}" for k, s in enumerate(lesson.STEPS)]
