"""Every color sftviz draws with, in one place. Each color means one thing:

- a role color (target blue, context orange, masked grey) marks a token's role, and nothing else;
- a run color (with its own marker) marks one training run in the plots: never a role color;
- the loss heatmap is a neutral grey ramp; outlines ("changed", a finding's tokens) and document breaks use the
  page's ink color.

The page's CSS variables (`css()`) and the plots (sftviz.plots) both read this file, and tests/test_palette.py
checks the contrast of every pair a reader has to tell apart (WCAG 2: 4.5:1 for text, 3:1 for lines).

>>> round(contrast("#000000", "#ffffff"), 1)
21.0
"""

import colorsys

# role -> theme -> (background, text, line): the token spans, the legend and the role plots
ROLES = {
    "target": {"light": ("#cfe6f7", "#003b66", "#0072B2"), "dark": ("#0b3d5e", "#d6ecff", "#56B4E9")},
    "context": {"light": ("#fbe9c6", "#5a3d00", "#b07a00"), "dark": ("#4a3606", "#ffe7b0", "#E69F00")},
    "masked": {"light": ("#e6e6e6", "#595959", "#8c8c8c"), "dark": ("#333333", "#b0b0b0", "#8c8c8c")},
}
ROLE_PLOT = {"target": "#0072B2", "context": "#E69F00", "masked": "#8c8c8c"}  # Okabe-Ito, color-blind safe

# A training run: its color, its marker (the runs differ by more than color) and its line in the training plot.
RUN_STYLES = [("#117733", "circle", "solid"), ("#AA4499", "square", "dash"), ("#7570B3", "diamond", "dashdot")]

PAGE = {"light": "#ffffff", "dark": "#0b0f19"}  # the page's background (Gradio's default themes)
INK = {"light": "#1f1f1f", "dark": "#f0f0f0"}  # outlines and marks: the page's own text color, not a role
BORDER = {"light": "#d0d0d0", "dark": "#555555"}  # boxes around the token views
HEAT = {"light": (40, 40, 40), "dark": (225, 225, 225)}  # the loss ramp: this color at opacity 0 (low) to HEAT_MAX
HEAT_MAX = 0.85
HEAT_INK_FROM = 0.44  # from this opacity on, a token's text is drawn in the page's background color (INK before),
HEAT_HOT_MIN = 0.65  # and the cell at least this dark: mid-grey reads badly in either ink, so the ramp skips it


def heat_opacity(part):
    """(opacity, hot) of the ramp for a loss at `part` (0-1) of the darkest: text stays readable (4.5:1) in both
    themes, dark ink on a light cell, the page's color on a dark one."""
    a = min(max(part, 0.0), 1.0) * HEAT_MAX
    return (a, False) if a < HEAT_INK_FROM else (max(a, HEAT_HOT_MIN), True)
ACCENT_HUE = "neutral"  # Gradio's theme color (buttons, selected tab, checked boxes): grey, never a role's orange
NEUTRAL = "#7f7f7f"  # plots' non-role marks (the length histogram, the max_length line)
SEVERITY = {"error": "#C0392B", "warning": "#8E6AB8", "info": "#5B7A99"}  # the doctor's finding edges (and words)


def run_style(name):
    """(color, marker, dash) of a run: whole text, an answer mode (answer only, assistant turns), or the weighted
    run. The same run has the same style on every plot and page."""
    k = 0 if name == "whole" else 1 if name in ("completion", "assistant") else 2
    return RUN_STYLES[k]


def css():
    """The CSS variables of the page (style.css uses them), in the light and the dark theme."""
    out = []
    for theme, selector in (("light", ":root"), ("dark", ".dark")):
        lines = [f"--sv-{role}-bg: {t[theme][0]}; --sv-{role}-fg: {t[theme][1]}; --sv-{role}-line: {t[theme][2]};"
                 for role, t in ROLES.items()]
        r, g, b = HEAT[theme]
        lines.append(f"--sv-ink: {INK[theme]}; --sv-border: {BORDER[theme]}; --sv-heat: {r}, {g}, {b}; --sv-heat-ink: {PAGE[theme]};")
        lines.append(" ".join(f"--sv-{s}: {c};" for s, c in SEVERITY.items()))
        out.append(f"{selector} {{ {' '.join(lines)} }}")
    return "\n".join(out) + "\n"


def luminance(color):
    """WCAG 2 relative luminance of "#rrggbb"."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b):
    """WCAG 2 contrast ratio of two colors (1 to 21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def hue(color):
    """The hue of "#rrggbb" in degrees (0-360)."""
    return 360 * colorsys.rgb_to_hls(*(int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0]


def saturation(color):
    """How far "#rrggbb" is from a grey: its largest channel minus its smallest (0-255)."""
    channels = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return max(channels) - min(channels)


def hue_distance(a, b):
    d = abs(hue(a) - hue(b)) % 360
    return min(d, 360 - d)
