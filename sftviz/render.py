"""HTML for the token view, the shift view, the mode comparison and the packing view (no gradio here).

Every token is a <span data-role="context|target|masked">; the role comes straight from
`Sequence.roles`, so the page can never disagree with the label engine. Styling lives in assets/style.css.
"""

import re
from html import escape

from .labels import IGNORE, LABELS_MEANING, literal
from .palette import heat_opacity, run_style
from .plan import run_title
from .verdict import outcome

ROLE_WORDS = {
    "target": "target: trained, label = the token itself (the output one position before is scored on it)",
    "context": "context: read as input, label -100, no loss",
    "masked": "masked: padding, not attended, label -100",
}


def legend():
    items = "".join(f'<span class="sv-tok" data-role="{r}">{escape(r)}</span> {escape(w.split(": ", 1)[1])}'
                    f'&nbsp;&nbsp; ' for r, w in ROLE_WORDS.items())
    return f'<div class="sv-legend">{items}</div>'


def _tip(seq, t):
    """A token's tooltip, in the one meaning of label (labels.LABELS_MEANING): its id, its label, what is scored."""
    p, label, token_id = seq.offset + t, seq.labels[t], seq.input_ids[t]
    if seq.attention_mask is not None and not seq.attention_mask[t]:
        return f"position {p} · padding, attention_mask 0 · input_ids[{p}] = {token_id} · labels[{p}] = -100"
    tip = f"position {p} · input_ids[{p}] = {token_id} · labels[{p}] = {label}"
    if label == IGNORE:
        tip += " (not trained)"
    elif p == 0:
        tip += " (never scored: nothing comes before it)"
    else:
        tip += f" (trained: scored on the output at {p - 1})"
    if seq.position_ids is not None:
        tip += f" · position_id {seq.position_ids[t]}"
    return tip


def tokens_html(seq, texts, changed=None, show_positions=False):
    """One span per token. `changed`: positions to outline (role differs in another mode, or a finding's)."""
    roles = seq.roles
    parts = []
    prev_src = seq.sources[0] if seq.sources else None
    for t, (text, role) in enumerate(zip(texts, roles)):
        p = seq.offset + t  # the position in the whole sequence (a long one is shown as a window of its end)
        src = seq.sources[t]
        if src != prev_src and src >= 0 and prev_src >= 0:
            parts.append('<span class="sv-doc-break" title="document boundary">║</span>')
        prev_src = src
        cls = "sv-tok sv-changed" if changed and p in changed else "sv-tok"
        pos = f'<sub class="sv-pos">{seq.position_ids[t]}</sub>' if show_positions and seq.position_ids else ""
        parts.append(f'<span class="{cls}" data-role="{role}" data-pos="{p}" title="{escape(_tip(seq, t))}">'
                     f'{escape(text)}{pos}</span>')
        if text.endswith("↵"):
            parts.append("<br>")
    return f'<div class="sv-tokens">{"".join(parts)}</div>'


def counts_phrase(seq):
    """How much of one sequence is trained, in the same words on every view: trained = a label that is not -100."""
    c = seq.role_counts()
    real = c["target"] + c["context"]
    phrase = f"{c['target']} of {real} tokens trained ({100 * c['target'] / real if real else 0:.0f}%)"
    if seq.num_scored != c["target"]:
        phrase += f", {seq.num_scored} scored (labels[0] never is)"
    return phrase


def summary_html(seq, mode="", note=""):
    c = seq.role_counts()
    drop = ('<div class="sv-dropped">✗ TRL drops this example: after truncation to max_length no token has a '
            'label, so it would add no loss.</div>' if seq.dropped else "")
    head = f"<b>{escape(mode)}</b>: " if mode else ""
    return (f'<div class="sv-summary">{head}{escape(counts_phrase(seq))} · {c["context"]} context · '
            f'{c["masked"]} masked (padding). {escape(note)}</div>{drop}')


def literal_html(seq):
    """The literal lists TRL's collator feeds the model for this row (LABELS_MEANING), short in the summary line
    and whole inside."""
    where = "" if not seq.offset else f"  # positions {seq.offset:,}-{seq.full_length - 1:,} (the end of the row)"
    lines = [f"input_ids = {list(seq.input_ids)}{where}", f"labels    = {list(seq.labels)}"]
    if seq.attention_mask is not None:
        lines.append(f"attention_mask = {list(seq.attention_mask)}")
    if seq.position_ids is not None:
        lines.append(f"position_ids = {list(seq.position_ids)}")
    short = literal(list(seq.labels))
    short = short if len(short) <= 90 else short[:88] + "…"
    part = f" (positions {seq.offset:,}-{seq.full_length - 1:,}, the end of the row)" if seq.offset else ""
    return (f'<details class="sv-literal"><summary>The labels the collator feeds the model{part}: '
            f'<code>labels = {escape(short)}</code></summary><p>{escape(LABELS_MEANING)}.</p><pre>{escape(chr(10).join(lines))}</pre></details>')


def token_view(seq, texts, note="", marked=(), mode=""):
    """The legend, the counts, the literal labels and the tokens; `marked` positions are outlined (a doctor
    finding's tokens)."""
    if marked:
        note += " Outlined: the tokens the doctor's finding points at."
    return (legend() + summary_html(seq, mode, note) + literal_html(seq)
            + tokens_html(seq, texts, set(marked), show_positions=seq.position_ids is not None))


def doctor_html(findings, n, note="", openable=None, packed=False):
    """The doctor's findings, errors first, each with what it means, the fix, and its first examples as
    buttons: a click opens that example with the tokens involved outlined. `openable`: how many examples
    the page holds (examples past it are named but cannot be opened); `packed`: no per-example view."""
    if not findings:
        return (f'<div class="sv-summary">✓ No findings in {n:,} examples: nothing known to go wrong with this data '
                f'and these settings. {escape(note)}</div>')
    symbol = {"error": "✗", "warning": "⚠", "info": "·"}
    items = []
    for f in findings:
        buttons = "".join(_open_button(e, openable, packed) for e in f.examples)
        items.append(f'<div class="sv-finding" data-severity="{f.severity}" data-check="{escape(f.check)}">'
                     f'<b>{symbol[f.severity]} {escape(f.severity)}: {escape(f.title)}</b> — {f.count:,} of '
                     f'{f.total:,} ({f.percent:.0f}%)<br>{escape(f.explanation)}<br><i>Fix:</i> {escape(f.fix)}'
                     + (f'<div class="sv-open-row">Open: {buttons}</div>' if buttons else "") + '</div>')
    counts = {s: sum(f.severity == s for f in findings) for s in symbol}
    head = " · ".join(f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in symbol)
    return (f'<div class="sv-summary">{head} over {n:,} examples. {escape(note)} Click an example under a finding '
            f'to open it with the tokens it points at outlined.</div>' + "".join(items))


def _open_button(example, openable, packed):
    i, positions = example["index"], example["positions"]
    label = f"example {i}" + (f" (position {positions[0]})" if len(positions) == 1 else "")
    title = escape(example.get("note") or (f"positions {', '.join(map(str, positions[:12]))}" if positions else ""))
    if packed or (openable is not None and i >= openable):
        why = "turn packing off to open examples" if packed else \
            f"past the first {openable:,} rows the page holds: python -m sftviz inspect FILE --limit {i + 1}"
        return f'<button class="sv-open" disabled title="{escape(why)}">{label}</button>'
    value = f"{i}:{','.join(map(str, positions))}"
    return f'<button class="sv-open" data-open="{value}" title="{title}">{label}</button>'


def progress_html(done, total, what="Checking every row"):
    """A progress bar (a bare count when the total is unknown)."""
    if total:
        part = min(1.0, done / total)
        return (f'<div class="sv-progress">{escape(what)}: {done:,} of ~{total:,} rows '
                f'<progress max="1" value="{part:.3f}"></progress> {100 * part:.0f}%</div>')
    return f'<div class="sv-progress">{escape(what)}: {done:,} rows <progress></progress></div>'


def shift_view(seq, texts, window=12, show_all=False):
    """Aligned rows: the token at t, labels[t] as TRL stores it, and what the output at t is scored on
    (labels[t+1]: the model's shift)."""
    n = len(seq.input_ids)
    targets = [t for t in range(1, n) if seq.labels[t] != IGNORE]
    if show_all or n <= window:
        lo, hi = 0, n
    else:
        # start just before the first trained pair, so it is on screen without scrolling
        first = targets[0] if targets else 0
        lo = max(0, first - 5)
        hi = min(n, lo + window)
    rows = {"position t": [], "input token at t": [], "labels[t], as TRL stores them": [], "": [],
            "the output at t is scored on labels[t+1]": []}
    for t in range(lo, hi):
        masked = seq.attention_mask is not None and not seq.attention_mask[t]
        nxt_scored = t + 1 < n and seq.labels[t + 1] != IGNORE
        cls = "sv-pair-on" if nxt_scored else "sv-pair-off"
        rows["position t"].append(f"<td>{seq.offset + t}</td>")
        rows["input token at t"].append(f'<td class="{cls}"><span class="sv-tok" data-role="{seq.roles[t]}">'
                                        f'{escape(texts[t])}</span></td>')
        rows["labels[t], as TRL stores them"].append(f'<td class="sv-label">{seq.labels[t]}</td>')
        rows[""].append(f'<td class="{cls}">{"↘" if nxt_scored else "·"}</td>')
        if t + 1 >= n:
            cell = '<i title="the last position has no next token">(end)</i>'
        elif masked:
            cell = '<i title="padding is not attended and has no label">—</i>'
        elif nxt_scored:
            cell = (f'<span class="sv-tok" data-role="target" title="labels[{seq.offset + t + 1}] = '
                    f'{seq.labels[t + 1]}">{escape(texts[t + 1])}</span>')
        else:
            cell = f'<i title="labels[{seq.offset + t + 1}] is -100">-100</i>'
        rows["the output at t is scored on labels[t+1]"].append(f'<td class="{cls}">{cell}</td>')
    table = "".join(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>" for name, cells in rows.items())
    where = f"positions {seq.offset + lo}–{seq.offset + hi - 1} of {seq.full_length}" + (
        "" if (lo, hi) == (0, n) else ", around the first trained token (the Tokens tab shows them all)")
    first = ("Position 0 is never scored: nothing comes before it, so its label (if any) is unused. "
             if lo == 0 and not seq.offset else "")
    last = "The last position predicts nothing: there is no next token. " if hi == n else ""
    return (f'<div class="sv-shift-note">{escape(where)}. {first}{last}</div>'
            f'<div class="sv-shift-scroll"><table class="sv-shift">{table}</table></div>')


def compare_view(a_name, a_seq, b_name, b_seq, texts):
    """The same example under two modes; tokens whose role differs are outlined."""
    changed = {a_seq.offset + t for t, (x, y) in enumerate(zip(a_seq.roles, b_seq.roles)) if x != y}
    out = []
    for name, seq in ((a_name, a_seq), (b_name, b_seq)):
        out.append(f'<div class="sv-compare-head"><b>{escape(name)}</b>: {escape(counts_phrase(seq))}'
                   f'{" — dropped by TRL" if seq.dropped else ""}</div>' + tokens_html(seq, texts, changed))
    note = f"{len(changed)} tokens change role between the two modes (outlined)."
    return f'<div class="sv-compare"><div class="sv-summary">{note}</div>{"".join(out)}</div>'


def packing_view(seq, row_index, strategy, rows_summary):
    """Which documents share this row, with their lengths and where position_ids restart."""
    docs = []
    for src in seq.sources:
        if src >= 0 and (not docs or docs[-1][0] != src):
            docs.append([src, 0])
        if src >= 0:
            docs[-1][1] += 1
    items = "".join(f"<li>example {d} — {n} tokens</li>" for d, n in docs)
    pos = ("position_ids restart at 0 for each document (padding-free: no attention mask; each document only "
           "sees itself, and its first label is set to -100)." if strategy.padding_free else
           f"{strategy.name} packing keeps no boundaries: documents attend to each other, and the first token of a "
           "document is predicted from the end of the previous one.")
    cut = (f"<p>(The last {len(seq.sources):,} of the row's {seq.full_length:,} positions: documents before them "
           f"are not listed.)</p>" if seq.offset else "")
    return (f'<div class="sv-packing"><b>Row {row_index}</b> holds {len(docs)} document(s):<ul>{items}</ul>{cut}'
            f'<p>{escape(pos)}</p><p>{escape(rows_summary)}</p></div>')


def code_spans(text):
    """Escaped text whose `column names` become <code>."""
    return re.sub(r"`([^`<>]+)`", r"<code>\1</code>", escape(text))


def fix_head(text):
    """The heading of one fix of a file TRL stops on."""
    return f'<div class="sv-fix-head"><b>{code_spans(text)}</b></div>'


def error_html(message):
    return f'<div class="sv-error" role="alert">⚠ {code_spans(message)}</div>'


SPECIAL = re.compile(r"(<\|[^|<>\s]{1,40}\|>|</?s>)")  # <|im_end|>, </s>: kept on one line when text wraps


def answer_text(text):
    """A generated or reference answer as HTML: wraps between words, never inside a special token."""
    parts = SPECIAL.split(text)  # odd items are the special tokens
    return "".join(f'<span class="sv-nowrap">{escape(p)}</span>' if k % 2 else escape(p) for k, p in enumerate(parts))


def run_key(mode):
    """A run's name with its own color and marker (sftviz.palette), as the plots draw it."""
    color, marker, _ = run_style(mode)
    return (f'<span class="sv-run" data-run="{escape(mode)}" data-marker="{marker}" style="--sv-run: {color}">'
            f'{escape(run_title(mode))}</span>')


def generations_html(final):
    """Greedy answers of each trained model to held-out prompts: one block per prompt (it stacks on a phone),
    each answer flagged by what it did (sftviz.verdict.outcome)."""
    items = []
    for g in final["generations"]:
        runs = "".join(f'<div class="sv-gen-run">{run_key(m)} <code>{answer_text(out["text"])}</code> '
                       f'<span class="sv-flag">{escape(" · ".join(outcome(out, g["reference"])))}</span></div>'
                       for m, out in g["outputs"].items())
        if "before" in g:  # a pretrained model's answer before any training
            runs = (f'<div class="sv-gen-run">before training <code>{answer_text(g["before"]["text"])}</code></div>'
                    + runs)
        items.append(f'<div class="sv-gen-item"><div class="sv-gen-prompt">held-out prompt (end): '
                     f'<code>…{answer_text(g["prompt"][-90:])}</code></div><div>reference answer: '
                     f'<code>{answer_text(g["reference"])}</code></div>{runs}</div>')
    return ('<div class="sv-summary">Greedy answers to held-out prompts (prompts the runs never trained on).</div>'
            f'<div class="sv-gens">{"".join(items)}</div>')


HEAT_FULL = 8.0  # nats: a loss this high or higher is drawn darkest (ln of a 3,000-token vocabulary)


def heatmap_html(final, texts):
    """Per-token loss of one held-out example under each trained model, on a neutral grey ramp (darker = higher
    loss), with each run's mean loss on the answer and on the prompt tokens."""
    heat = final["heatmap"]
    answer = set(heat["answer_positions"])
    out = []
    for mode, losses in heat["losses"].items():
        spans = []
        for t, (text, loss) in enumerate(zip(texts, losses)):
            if loss is None:
                spans.append(f'<span class="sv-heat" title="position 0: not predicted">{escape(text)}</span>')
                continue
            a, hot = heat_opacity(loss / HEAT_FULL)
            cls = "sv-heat" + (" sv-heat-answer" if t in answer else "") + (" sv-heat-hot" if hot else "")
            spans.append(f'<span class="{cls}" style="background: rgba(var(--sv-heat), {a:.2f})" '
                         f'title="loss {loss:.2f} predicting this token">{escape(text)}</span>')
            if text.endswith("↵"):
                spans.append("<br>")
        means = []
        for name, keep in (("answer", lambda t: t in answer), ("prompt", lambda t: t not in answer)):
            vals = [x for t, x in enumerate(losses) if x is not None and keep(t)]
            if vals:
                means.append(f"{name} tokens {sum(vals) / len(vals):.2f}")
        out.append(f'<div class="sv-compare-head">{run_key(mode)}: mean loss {", ".join(means)}</div>'
                   f'<div class="sv-tokens">{"".join(spans)}</div>')
    note = (" A run trained on the answers only was never trained on prompts: its prompt tokens are dark by design."
            if any(m in ("completion", "assistant") for m in heat["losses"]) and len(answer) < len(texts) - 1 else "")
    return ('<div class="sv-summary">Per-token loss on one held-out example (grey: darker = the model was more '
            f'surprised; answer tokens are bold and underlined).{note}</div>' + "".join(out))


def verdict_html(line, caveats):
    """The training's verdict (sftviz.verdict) and what goes with it."""
    items = "".join(f"<li>{escape(c)}</li>" for c in caveats)
    return ('<div class="sv-verdict" role="status">' + (f"<b>{escape(line)}</b>" if line else "")
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def mapping_preview(raw, mapped, notes=()):
    """One row before and after the mapping template, so the user sees what TRL will get; `notes`: what to know
    about it (a template left empty, a completion the prompt already holds)."""
    cells = "".join(f"<tr><th>{escape(k)}</th><td><pre>{escape(str(v))}</pre></td></tr>" for k, v in mapped.items())
    said = "".join(f'<div class="sv-preview-note">{code_spans(n)}</div>' for n in notes)
    return (f'<div class="sv-preview"><div>Row columns: {escape(", ".join(raw))} → TRL gets:</div>'
            f'<table>{cells}</table>{said}</div>')


def lesson_tokens_html(texts, step, picks=(), roles=None):
    """A lesson step's tokens, one button each (data-pos), to click before the reveal: no role in the markup until
    `roles` is given (after Check); `picks` stay marked. Every element's id names the step and the stage, so the
    page replaces the buttons of another step instead of patching them (Gradio's HTML update keeps elements)."""
    stage = f"{step}-{'r' if roles is not None else 'q'}"
    parts = []
    for t, text in enumerate(texts):
        role = f' data-role="{roles[t]}"' if roles is not None else ""
        picked = " sv-picked" if t in picks else ""
        parts.append(f'<button id="sv-pick-{stage}-{t}" class="sv-tok sv-pick{picked}" data-pos="{t}"{role} '
                     f'aria-pressed="{"true" if picked else "false"}">{escape(text)}</button>')
        if text.endswith("↵"):
            parts.append("<br>")
    return f'<div id="sv-lesson-{stage}" class="sv-tokens sv-lesson-tokens">{"".join(parts)}</div>'


def lesson_runs_html(step, picks=(), letters=None):
    """The training step's choice: "Run A" and "Run B", one to pick (sv-single); after Check (`letters`: mode ->
    letter) each says which run it was, and the answer-only one is marked data-answer."""
    stage = f"{step}-{'r' if letters is not None else 'q'}"
    parts = []
    for k, letter in enumerate("AB"):
        picked = " sv-picked" if k in picks else ""
        if letters is None:
            parts.append(f'<button id="sv-pick-{stage}-{k}" class="sv-pick sv-run{picked}" data-pos="{k}" '
                         f'aria-pressed="{"true" if picked else "false"}">Run {letter} is answer only</button>')
        else:
            mode = next(m for m, x in letters.items() if x == letter)
            said = ("✓ " if mode == "completion" else "") + f"Run {letter}: {escape(run_title(mode))}" + \
                (" (your pick)" if k in picks else "")
            parts.append(f'<button id="sv-pick-{stage}-{k}" class="sv-pick sv-run{picked}" data-pos="{k}" disabled '
                         f'data-answer="{str(mode == "completion").lower()}">{said}</button>')
    return f'<div id="sv-lesson-{stage}" class="sv-lesson-runs sv-single">{"".join(parts)}</div>'


def lesson_hunt_html(step, examples, picks=(), broken=None):
    """The bug hunt: every example as TRL labels it (`examples`: [(seq, texts)]), each a card to pick; after
    Check (`broken`: index -> the doctor's titles) the cards say which are broken and why (data-broken)."""
    stage = f"{step}-{'r' if broken is not None else 'q'}"
    cards = []
    for k, (seq, texts) in enumerate(examples):
        picked = " sv-picked" if k in picks else ""
        head = f"Example {k + 1}"
        if broken is None:
            cards.append(f'<button id="sv-pick-{stage}-{k}" class="sv-pick sv-card{picked}" data-pos="{k}" '
                         f'aria-pressed="{"true" if picked else "false"}"><b>{head}</b>{tokens_html(seq, texts)}'
                         f'</button>')
        else:
            said = "; ".join(broken.get(k, [])) or "fine: the answer and its EOS are trained"
            head += " (your pick)" if k in picks else ""
            cards.append(f'<div id="sv-pick-{stage}-{k}" class="sv-card{picked}" data-pos="{k}" '
                         f'data-broken="{str(k in broken).lower()}"><b>{head}: {escape(said)}</b>'
                         f'{tokens_html(seq, texts)}</div>')
    return f'<div id="sv-lesson-{stage}" class="sv-lesson-hunt">{legend()}{"".join(cards)}</div>'


def lesson_feedback_html(lines, why, right):
    mark = "✓" if right else "✗"
    said = " ".join(escape(line) for line in lines)
    return (f'<div class="sv-feedback" data-right="{str(right).lower()}"><b>{mark} {said}</b>'
            f'<p>{code_spans(why)}</p></div>')


def class_summary_html(summary, titles):
    """The teacher's table (sftviz.classroom.Classes.summary): a row per step."""
    rows = []
    for r, title in zip(summary["rows"], titles):
        right = "–" if r["right"] is None else f"{100 * r['right']:.0f}%"
        wrong = "–" if r["common_wrong"] is None else f"{escape(r['common_wrong'][0])} ({r['common_wrong'][1]})"
        here = ' class="sv-class-here"' if r["step"] == summary["step"] else ""
        rows.append(f'<tr{here} data-step="{r["step"] + 1}"><td>{r["step"] + 1}. {escape(title)}</td>'
                    f'<td data-col="present">{r["present"]}</td><td data-col="checked">{r["checked"]}</td>'
                    f'<td data-col="right">{right}</td><td data-col="wrong">{wrong}</td></tr>')
    n = summary["students"]
    return (f'<div class="sv-class-summary"><p>{n} student{"" if n == 1 else "s"} joined · the class is at step '
            f'{summary["step"] + 1}</p><table><thead><tr><th>step</th><th>here now</th><th>pressed Check</th>'
            f'<th>right</th><th>most common wrong pick</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def qr_html(link):
    """The students' link as a QR code (an inline SVG, no request anywhere): a class scans it off the projector."""
    import segno

    uri = segno.make(link, error="m").svg_data_uri(scale=5, border=2, dark="#000000", light="#ffffff")
    return f'<img class="sv-qr" src="{escape(uri)}" alt="A QR code of the students\' link">'


# --- What a real model already knows (sftviz.model_view) ------------------------------------------------------

def model_intro():
    return ('<div class="sv-summary">Pick a model above to run it forward on the example shown: every token gets '
            'the model\'s loss (nats) for predicting it, before any training, with the labels over it. The loss a '
            'trainer logs at step 0 is the mean of these over the tokens that have a label.</div>')


def model_loading(name, elapsed, expected, other=False):
    what = "Another model is loading on this server; this one loads after it" if other else \
        f"Loading the model {escape(name)} (~{expected:.0f} s the first time, a few seconds after): {elapsed:.0f} s"
    return (f'<div class="sv-summary sv-model-loading" role="status">⏳ {what}… The other tabs, Prev and Next '
            f'keep working meanwhile; this tab fills in when it is ready.</div>')


def _mean(values):
    return sum(values) / len(values) if values else None


def _nats(x):
    return "-" if x is None else f"{x:.2f}"


def model_view(seq, texts, losses, flags, modes, mode_name, model_name, known):
    """The real model's loss on every token of one example (grey ramp, darker = more surprised), the trained
    tokens bold and underlined, the tokens not in the data (flags: {position: why}) outlined with a dashed line,
    the step-0 loss of each mode and why they differ."""
    trained = [t for t, lab in enumerate(seq.labels) if t and lab != IGNORE]
    context = [t for t, lab in enumerate(seq.labels) if t and lab == IGNORE]
    already = [t for t in trained if losses[t] < known]
    signal = [t for t in trained if losses[t] >= known]
    unscored = (f"; {len(context)} context tokens are never scored (mean {_nats(_mean([losses[t] for t in context]))}"
                f" nats, shown for reference)" if context else "")
    head = (f'<div class="sv-summary"><b>{escape(model_name)}</b> before any training, under <b>'
            f'{escape(mode_name)}</b> (labels made with the model\'s own tokenizer): of {len(trained)} trained '
            f'tokens, <b>{len(already)}</b> it already predicts (loss under {known:g} nats: they teach it almost '
            f'nothing, and pull the mean down) and <b>{len(signal)}</b> carry the signal (mean '
            f'{_nats(_mean([losses[t] for t in signal]))} nats){unscored}.</div>')
    rows = []
    for m in modes:
        if m.refused:
            rows.append(f"<li><b>{escape(m.name)}</b>: TRL refuses it here ({escape(m.refused)})</li>")
        elif m.same_as:
            rows.append(f"<li><b>{escape(m.name)}</b>: the same labels as {escape(m.same_as)} here</li>")
        else:
            rows.append(f"<li><b>{escape(m.name)}</b>: {_nats(m.mean)} nats/token over {m.count} tokens</li>")
    why = ""
    distinct = sorted((m for m in modes if not m.same_as and not m.refused and m.mean is not None),
                      key=lambda m: -m.count)
    if len(distinct) == 2 and distinct[1].positions < distinct[0].positions:  # said only where one holds the other
        big, small = distinct
        extra = [losses[t] for t in big.positions - small.positions]
        extra_mean = _mean(extra)
        why = (f" They start apart because each averages over its own tokens: {escape(big.name)} also scores "
               f"{len(extra)} tokens that {escape(small.name)} does not (mean {_nats(extra_mean)} nats), "
               f"{'harder' if extra_mean > small.mean else 'easier'} for this model than those {escape(small.name)} "
               f"scores, so it starts {'higher' if big.mean > small.mean else 'lower'}. Their curves are not "
               f"comparable for this reason; the Train tab scores every run on the same held-out tokens.")
    steps = (f'<div class="sv-summary">The loss each mode would log at step 0 for this example alone (a batch of '
             f'one; TRL averages over every trained token of a batch):<ul>{"".join(rows)}</ul>{why}</div>')
    note = ""
    if flags:
        runs = []
        for t in sorted(flags):
            if runs and t == runs[-1][-1] + 1 and flags[t] == flags[runs[-1][0]]:
                runs[-1].append(t)
            else:
                runs.append([t])
        items = "".join(
            f'<li>⚑ positions {r[0]}-{r[-1]}: <q>{escape("".join(texts[t] for t in r).replace("␣", " "))}</q>, {escape(flags[r[0]])}'
            f' (mean loss {_nats(_mean([losses[t] for t in r if losses[t] is not None]))} nats'
            f'{", trained" if any(t in trained for t in r) else ", context"})</li>' for r in runs)
        note = f'<div class="sv-summary sv-model-flags">Not in your data:<ul>{items}</ul></div>'
    spans = []
    for t, (text, loss) in enumerate(zip(texts, losses)):
        lab = seq.labels[t]
        what = "trained" if t in trained else "never scored: nothing comes before it" if t == 0 else "context, not scored"
        tip = f"position {t} · labels[{t}] = {lab} ({what})"
        cls = "sv-heat" + (" sv-heat-answer" if t and lab != IGNORE else "") + (" sv-flagged" if t in flags else "")
        style = ""
        if loss is not None:
            a, hot = heat_opacity(loss / HEAT_FULL)
            cls += " sv-heat-hot" if hot else ""
            style = f' style="background: rgba(var(--sv-heat), {a:.2f})"'
            tip += f" · loss {loss:.2f} nats predicting this token"
        if t in flags:
            tip += f" · ⚑ {flags[t]}"
        spans.append(f'<span class="{cls}" data-pos="{t}"{style} title="{escape(tip)}">{escape(text)}</span>')
        if text.endswith("↵"):
            spans.append("<br>")
    legend = ('<div class="sv-legend">Grey: the model\'s loss predicting each token (darker = more surprised). '
              '<span class="sv-heat sv-heat-answer">Bold, underlined</span>: trained (a label). '
              '<span class="sv-heat sv-flagged">dashed</span>: not in your data.</div>')
    return head + steps + note + legend + f'<div class="sv-tokens sv-model-tokens">{"".join(spans)}</div>'


def model_roles(sums, roles, n, skipped, model_name, mode_name, most_tokens):
    """The dataset pass: the model's mean loss per role over the first n examples, and the step-0 loss with and
    without the tokens it already predicts."""
    rows = "".join(f"<tr><td>{escape(words)}</td><td>{sums[role][1]:,}</td><td>"
                   f"{_nats(sums[role][0] / sums[role][1] if sums[role][1] else None)}</td></tr>"
                   for role, words in roles)
    trained, known = sums["trained"], sums["known"]
    rest = trained[1] - known[1]
    without = (trained[0] - known[0]) / rest if rest else None
    line = (f"Step-0 loss over these examples: <b>{_nats(trained[0] / trained[1] if trained[1] else None)}</b> "
            f"nats/token; without the {known[1]:,} trained tokens the model already predicts it would be "
            f"<b>{_nats(without)}</b>: the tokens that carry the signal.") if trained[1] else ""
    left = f" ({skipped} left out: longer than {most_tokens:,} tokens)" if skipped else ""
    return (f'<div class="sv-summary"><b>{escape(model_name)}</b> on the first {n + skipped} examples{left}, under '
            f'<b>{escape(mode_name)}</b>, before any training. {line}</div>'
            f'<table class="sv-roles"><tr><th>tokens</th><th>count</th><th>mean loss (nats)</th></tr>{rows}</table>')
