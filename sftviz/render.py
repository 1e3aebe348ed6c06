"""HTML for the token view, the shift view, the mode comparison and the packing view (no gradio here).

Every token is a <span data-role="context|target|masked">; the role comes straight from
`Sequence.roles`, so the page can never disagree with the label engine. Styling lives in assets/style.css.
"""

import re
from html import escape

from .labels import IGNORE
from .plan import run_title

ROLE_WORDS = {
    "target": "target: trained, the model learns to predict this token",
    "context": "context: read as input, label -100, no loss",
    "masked": "masked: padding, not attended",
}


def legend():
    items = "".join(f'<span class="sv-tok" data-role="{r}">{escape(r)}</span> {escape(w.split(": ", 1)[1])}'
                    f'&nbsp;&nbsp; ' for r, w in ROLE_WORDS.items())
    return f'<div class="sv-legend">{items}</div>'


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
        label = seq.labels[t]
        nxt = texts[t + 1] if t + 1 < len(texts) else None
        if role == "masked":
            tip = f"position {p} · padding (id {seq.input_ids[t]}) · attention_mask 0 · label -100"
        else:
            tip = f"position {p} · token id {seq.input_ids[t]} · label {'-100' if label == IGNORE else label}"
            if p == 0 and label != IGNORE:
                tip += " (never scored: nothing comes before it)"
            if seq.position_ids is not None:
                tip += f" · position_id {seq.position_ids[t]}"
            if nxt is not None and seq.labels[t + 1] != IGNORE:
                tip += f" · predicts → {nxt}"
            elif nxt is not None:
                tip += f" · next token {nxt} is not scored"
        cls = "sv-tok sv-changed" if changed and p in changed else "sv-tok"
        pos = f'<sub class="sv-pos">{seq.position_ids[t]}</sub>' if show_positions and seq.position_ids else ""
        parts.append(f'<span class="{cls}" data-role="{role}" data-pos="{p}" title="{escape(tip)}">'
                     f'{escape(text)}{pos}</span>')
        if text.endswith("↵"):
            parts.append("<br>")
    return f'<div class="sv-tokens">{"".join(parts)}</div>'


def summary_html(seq, note=""):
    c = seq.role_counts()
    real = c["target"] + c["context"]
    pct = 100 * c["target"] / real if real else 0
    drop = ('<div class="sv-dropped">✗ TRL drops this example: after truncation to max_length no token has a '
            'label, so it would add no loss.</div>' if seq.dropped else "")
    return (f'<div class="sv-summary"><b>{c["target"]}</b> target · <b>{c["context"]}</b> context · '
            f'<b>{c["masked"]}</b> masked — {pct:.0f}% of real tokens trained; {seq.num_scored} tokens carry '
            f'loss after the shift. {escape(note)}</div>{drop}')


def token_view(seq, texts, note="", marked=()):
    """The legend, the counts and the tokens; `marked` positions are outlined (a doctor finding's tokens)."""
    if marked:
        note += " Outlined: the tokens the doctor's finding points at."
    return legend() + summary_html(seq, note) + tokens_html(seq, texts, set(marked),
                                                            show_positions=seq.position_ids is not None)


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


def shift_view(seq, texts, window=28, show_all=False):
    """Two aligned rows: what the model sees at t, and the label it is scored on (token t+1)."""
    n = len(seq.input_ids)
    targets = [t for t in range(1, n) if seq.labels[t] != IGNORE]
    if show_all or n <= window:
        lo, hi = 0, n
    else:
        # start just before the first trained pair, so it is on screen without scrolling
        first = targets[0] if targets else 0
        lo = max(0, first - 6)
        hi = min(n, lo + window)
    head, sees, arrows, scored = ["<th>position</th>"], ["<th>the model sees</th>"], ["<th></th>"], [
        "<th>it is scored on</th>"]
    for t in range(lo, hi):
        masked = seq.attention_mask is not None and not seq.attention_mask[t]
        nxt_scored = t + 1 < n and seq.labels[t + 1] != IGNORE
        cls = "sv-pair-on" if nxt_scored else "sv-pair-off"
        head.append(f"<td>{seq.offset + t}</td>")
        sees.append(f'<td class="{cls}"><span class="sv-tok" data-role="{seq.roles[t]}">{escape(texts[t])}</span></td>')
        arrows.append(f'<td class="{cls}">{"↘" if nxt_scored else "·"}</td>')
        if t + 1 >= n:
            cell = '<i title="the last position has no next token">(end)</i>'
        elif masked:
            cell = '<i title="padding is not attended and has no label">—</i>'
        elif nxt_scored:
            cell = f'<span class="sv-tok" data-role="target">{escape(texts[t + 1])}</span>'
        else:
            cell = f'<i title="label of position {seq.offset + t + 1} is -100">-100</i>'
        scored.append(f'<td class="{cls}">{cell}</td>')
    rows = "".join(f"<tr>{''.join(r)}</tr>" for r in (head, sees, arrows, scored))
    where = f"positions {seq.offset + lo}–{seq.offset + hi - 1} of {seq.full_length}" + (
        "" if (lo, hi) == (0, n) else ", around the first trained token")
    first = ("Position 0 is never scored: nothing comes before it, so its label (if any) is unused. "
             if lo == 0 and not seq.offset else "")
    last = "The last position predicts nothing: there is no next token. " if hi == n else ""
    return (f'<div class="sv-shift-note">{escape(where)}. {first}{last}</div>'
            f'<div class="sv-shift-scroll"><table class="sv-shift">{rows}</table></div>')


def compare_view(a_name, a_seq, b_name, b_seq, texts):
    """The same example under two modes; tokens whose role differs are outlined."""
    changed = {a_seq.offset + t for t, (x, y) in enumerate(zip(a_seq.roles, b_seq.roles)) if x != y}
    out = []
    for name, seq in ((a_name, a_seq), (b_name, b_seq)):
        c = seq.role_counts()
        real = c["target"] + c["context"]
        pct = 100 * c["target"] / real if real else 0
        out.append(f'<div class="sv-compare-head"><b>{escape(name)}</b>: {c["target"]} of {real} tokens trained '
                   f'({pct:.0f}%){" — dropped by TRL" if seq.dropped else ""}</div>'
                   + tokens_html(seq, texts, changed))
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


def generations_html(final):
    """Greedy answers of each trained model to held-out prompts, side by side."""
    modes = list(final["generations"][0]["outputs"]) if final["generations"] else []
    head = "".join(f"<th>{escape(run_title(m))}</th>" for m in modes)
    rows = []
    for g in final["generations"]:
        cells = []
        for m in modes:
            out = g["outputs"][m]
            flags = ("✓ stops at EOS" if out["stopped_at_eos"] else "✗ no EOS: never stops") + (
                " · ✗ writes the next turn" if out["next_turn"] else "")
            cells.append(f'<td><code>{escape(out["text"])}</code><div class="sv-flag">{escape(flags)}</div></td>')
        rows.append(f'<tr><td class="sv-gen-prompt"><code>…{escape(g["prompt"][-90:])}</code></td>'
                    f'<td><code>{escape(g["reference"])}</code></td>{"".join(cells)}</tr>')
    return (f'<table class="sv-gen"><tr><th>held-out prompt (end)</th><th>reference answer</th>{head}</tr>'
            f'{"".join(rows)}</table>')


HEAT_FULL = 8.0  # nats: a loss this high or higher is drawn fully dark (ln of a 3,000-token vocabulary)


def heatmap_html(final, texts):
    """Per-token loss of one held-out example under each trained model (darker = higher loss)."""
    heat = final["heatmap"]
    answer = set(heat["answer_positions"])
    out = []
    for mode, losses in heat["losses"].items():
        spans = []
        for t, (text, loss) in enumerate(zip(texts, losses)):
            if loss is None:
                spans.append(f'<span class="sv-heat" title="position 0: not predicted">{escape(text)}</span>')
                continue
            a = min(loss / HEAT_FULL, 1.0)
            cls = "sv-heat sv-heat-answer" if t in answer else "sv-heat"
            spans.append(f'<span class="{cls}" style="background: rgba(213,94,0,{a:.2f})" '
                         f'title="loss {loss:.2f} predicting this token">{escape(text)}</span>')
            if text.endswith("↵"):
                spans.append("<br>")
        out.append(f'<div class="sv-compare-head"><b>{escape(run_title(mode))}</b></div>'
                   f'<div class="sv-tokens">{"".join(spans)}</div>')
    return ('<div class="sv-summary">Per-token loss on a held-out example (darker = the model was more surprised;'
            ' answer tokens are underlined).</div>' + "".join(out))


def mapping_preview(raw, mapped):
    """One row before and after the mapping template, so the user sees what TRL will get."""
    cells = "".join(f"<tr><th>{escape(k)}</th><td><pre>{escape(str(v))}</pre></td></tr>" for k, v in mapped.items())
    return (f'<div class="sv-preview"><div>Row columns: {escape(", ".join(raw))} → TRL gets:</div>'
            f'<table>{cells}</table></div>')
