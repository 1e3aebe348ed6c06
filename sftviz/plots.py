"""Plotly figures: dataset statistics and live loss curves (no gradio here)."""

from collections import Counter

import plotly.graph_objects as go

from .plan import run_title

COLORS = {"target": "#0072B2", "context": "#E69F00", "masked": "#999999"}  # Okabe-Ito, color-blind safe
RUN_COLORS = ["#0072B2", "#D55E00", "#009E73"]


# A small template made once: plotly's named templates ("plotly_white") are deep-copied into every
# figure, which cost ~30 ms a figure, most of a page refresh.
TEMPLATE = go.layout.Template(layout=dict(
    font=dict(color="#666"), colorway=RUN_COLORS, hovermode="closest",
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
        fig.add_bar(name=role, x=modes, y=[per_mode[m][role] for m in modes], marker_color=COLORS[role],
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
                               marker_color="#56B4E9", name="examples",
                               customdata=[f"{s}-{s + width - 1}" for s in starts],
                               hovertemplate="%{customdata} tokens: %{y} examples<extra></extra>"))
    else:
        fig = go.Figure()
    if max_length and lengths and max_length > 1.5 * max(lengths):
        fig.add_annotation(text=f"max_length {max_length}: no example is cut", xref="paper", yref="paper",
                           x=1, y=1.08, showarrow=False)
    elif max_length:
        fig.add_vline(x=max_length, line_dash="dash", line_color="#D55E00",
                      annotation_text=f"max_length {max_length}: cut here", annotation_position="top")
    fig.update_xaxes(title="tokens per example (before truncation)")
    fig.update_yaxes(title="examples")
    return _layout(fig, "Length histogram")


SHOWN_POINTS = 400  # a training curve is drawn with at most this many points (every k-th step, and the last)
_LOSS_LAYOUT = []  # the two-panel layout, made once: plotly's make_subplots costs ~50 ms a figure


def _loss_layout():
    if not _LOSS_LAYOUT:
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=(
            "training loss, each on its own tokens (not comparable)",
            "held-out loss: answer tokens (solid), prompt tokens (dotted)"))
        for col in (1, 2):
            fig.update_xaxes(title="step", row=1, col=col)
            fig.update_yaxes(title="loss (nats/token)", rangemode="tozero", row=1, col=col)
        _LOSS_LAYOUT.append(_layout(fig, None, height=380).layout.to_plotly_json())
    return _LOSS_LAYOUT[0]


def _thin(points, most=SHOWN_POINTS):
    """Every k-th point and the last, at most about `most` of them."""
    k = -(-len(points) // most)
    return points if k <= 1 else points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def loss_figure(curves, steps=None):
    """Left: each run's own training loss (not comparable). Right: the same held-out tokens for every run.
    Built from plain dicts on a layout made once (the page redraws it every 0.4 s for every watcher)."""
    traces = []
    for k, (mode, c) in enumerate(curves.items()):
        color, name = RUN_COLORS[k % len(RUN_COLORS)], run_title(mode)
        if c["train"]:
            xs, ys = zip(*_thin(c["train"]))
            traces.append(dict(type="scatter", x=xs, y=ys, mode="lines", name=f"{name}: train", xaxis="x", yaxis="y",
                               line=dict(color=color, width=1.5), legendgroup=mode))
        for key, dash in (("answer", "solid"), ("prompt", "dot")):
            pts = [(s, v) for s, v in c[key] if v is not None]
            if pts:
                xs, ys = zip(*pts)
                traces.append(dict(type="scatter", x=xs, y=ys, mode="lines+markers", name=f"{name}: held-out {key}",
                                   xaxis="x2", yaxis="y2", line=dict(color=color, dash=dash, width=2.5),
                                   marker=dict(size=5), legendgroup=mode))
    layout = dict(_loss_layout())
    if steps:
        for axis in ("xaxis", "xaxis2"):
            layout[axis] = {**layout[axis], "range": [0, steps]}
    return go.Figure(data=traces, layout=layout, skip_invalid=False)
