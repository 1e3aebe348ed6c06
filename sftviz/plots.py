"""Plotly figures: dataset statistics and live loss curves (no gradio here)."""

from collections import Counter

import plotly.graph_objects as go

from .palette import NEUTRAL, ROLE_PLOT, RUN_STYLES, run_style
from .plan import run_title


# A small template made once: plotly's named templates ("plotly_white") are deep-copied into every
# figure, which cost ~30 ms a figure, most of a page refresh.
TEMPLATE = go.layout.Template(layout=dict(
    font=dict(color="#666"), colorway=[c for c, _, _ in RUN_STYLES], hovermode="closest",
    xaxis=dict(gridcolor="rgba(128,128,128,0.25)", zerolinecolor="rgba(128,128,128,0.4)", linecolor="#999"),
    yaxis=dict(gridcolor="rgba(128,128,128,0.25)", zerolinecolor="rgba(128,128,128,0.4)", linecolor="#999")))


def _layout(fig, title, height=300):
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.2), template=TEMPLATE,
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def roles_figure(per_mode):
    """Stacked bars: target vs context tokens under each mode."""
    modes = list(per_mode)
    fig = go.Figure()
    for role in ("target", "context"):
        fig.add_bar(name=role, x=modes, y=[per_mode[m][role] for m in modes], marker_color=ROLE_PLOT[role],
                    marker_pattern_shape="" if role == "target" else "/",
                    text=[f"{100 * per_mode[m][role] / max(1, per_mode[m]['target'] + per_mode[m]['context']):.0f}%"
                          for m in modes])
    fig.update_layout(barmode="stack")
    return _layout(fig, "Tokens per role, by mode")


def length_figure(lengths, max_length, bins=40):
    """Examples per length (a Counter: length -> examples), binned here: a million rows cost 40 bars."""
    if lengths:
        low, high = min(lengths), max(lengths)
        width = max(1, -(-(high - low + 1) // bins))
        counts = Counter()
        for length, k in lengths.items():
            counts[low + (length - low) // width * width] += k
        starts = sorted(counts)
        fig = go.Figure(go.Bar(x=[s + (width - 1) / 2 for s in starts], y=[counts[s] for s in starts], width=width,
                               marker_color=NEUTRAL, name="examples",
                               customdata=[f"{s}-{s + width - 1}" for s in starts],
                               hovertemplate="%{customdata} tokens: %{y} examples<extra></extra>"))
    else:
        fig = go.Figure()
    if max_length and lengths and max_length > 1.5 * max(lengths):
        fig.add_annotation(text=f"max_length {max_length}: no example is cut", xref="paper", yref="paper",
                           x=1, y=1.08, showarrow=False)
    elif max_length:
        fig.add_vline(x=max_length, line_dash="dash", line_color=NEUTRAL,
                      annotation_text=f"max_length {max_length}: cut here", annotation_position="top")
    fig.update_xaxes(title="tokens per example (before truncation)")
    fig.update_yaxes(title="examples")
    return _layout(fig, "Length histogram")


SHOWN_POINTS = 400  # a training curve is drawn with at most this many points (every k-th step, and the last)
_LAYOUTS = {}  # the loss plots' layouts, made once each (the page redraws them every 0.4 s for every watcher)
HELD_OUT_TITLE = "Held-out loss: the same tokens for every run"
TRAIN_TITLE = "Training loss: not comparable"


def _loss_layout(title):
    if title not in _LAYOUTS:
        fig = _layout(go.Figure(), dict(text=title, font=dict(size=14)), height=340)
        fig.update_layout(margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.22, x=0,
                                                                             font=dict(size=11)))
        fig.update_xaxes(title=dict(text="step", standoff=4))
        fig.update_yaxes(title="loss (nats/token)", rangemode="tozero")
        _LAYOUTS[title] = fig.layout.to_plotly_json()
    return _LAYOUTS[title]


def _thin(points, most=SHOWN_POINTS):
    """Every k-th point and the last, at most about `most` of them."""
    k = -(-len(points) // most)
    return points if k <= 1 else points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def _figure(traces, title, steps):
    layout = dict(_loss_layout(title))
    if steps:
        layout["xaxis"] = {**layout["xaxis"], "range": [0, steps]}
    return go.Figure(data=traces, layout=layout, skip_invalid=False)


def held_out_figure(curves, steps=None, letters=None):
    """The fair comparison, first on the page: every run scored on the same held-out answer tokens (solid) and
    prompt tokens (dotted). A run has its own color and marker (sftviz.palette), never a role color. `letters`
    (mode -> "A" | "B"): the runs are "Run A" and "Run B" instead, styled by letter (the lesson's guess)."""
    traces = []
    for mode, c in curves.items():
        color, marker, _ = RUN_STYLES["AB".index(letters[mode])] if letters else run_style(mode)
        title = f"Run {letters[mode]}" if letters else run_title(mode)
        for key, dash, shown in (("answer", "solid", "answer"), ("prompt", "dot", "prompt")):
            pts = [(s, v) for s, v in c[key] if v is not None]
            if pts:
                xs, ys = zip(*pts)
                traces.append(dict(type="scatter", x=xs, y=ys, mode="lines+markers", legendgroup=title,
                                   name=f"{title}: {shown}", line=dict(color=color, dash=dash, width=2.5),
                                   marker=dict(size=6, symbol=marker)))
    return _figure(traces, HELD_OUT_TITLE, steps)


def train_figure(curves, steps=None):
    """Each run's own training loss: averaged over different tokens (whole text: all; answer only: the answers),
    so the curves are not comparable with each other."""
    traces = []
    for mode, c in curves.items():
        color, marker, dash = run_style(mode)
        if c["train"]:
            xs, ys = zip(*_thin(c["train"]))
            traces.append(dict(type="scatter", x=xs, y=ys, mode="lines+markers", name=run_title(mode),
                               line=dict(color=color, width=1.5, dash=dash),
                               marker=dict(symbol=marker, size=6, maxdisplayed=12)))
    return _figure(traces, TRAIN_TITLE, steps)
