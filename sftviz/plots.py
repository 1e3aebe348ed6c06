"""Plotly figures: dataset statistics and live loss curves (no gradio here)."""

import plotly.graph_objects as go

COLORS = {"target": "#0072B2", "context": "#E69F00", "masked": "#999999"}  # Okabe-Ito, color-blind safe
RUN_COLORS = ["#0072B2", "#D55E00", "#009E73"]


def _layout(fig, title, height=300):
    fig.update_layout(title=title, height=height, margin=dict(l=40, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.2), template="plotly_white",
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


def length_figure(lengths, max_length):
    fig = go.Figure(go.Histogram(x=lengths, nbinsx=40, marker_color="#56B4E9", name="examples"))
    if max_length:
        fig.add_vline(x=max_length, line_dash="dash", line_color="#D55E00",
                      annotation_text=f"max_length {max_length}: cut here", annotation_position="top")
    fig.update_xaxes(title="tokens per example (before truncation)")
    fig.update_yaxes(title="examples")
    return _layout(fig, "Length histogram")
