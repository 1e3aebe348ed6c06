"""The palette (sftviz/palette.py): one meaning per color, readable in both themes, and the only place colors live."""

import os
import re

from conftest import ROOT
from sftviz import palette, plots, render

THEMES = ("light", "dark")


def test_role_text_is_readable_on_its_background_in_both_themes():
    for role, themes in palette.ROLES.items():
        for theme in THEMES:
            bg, fg, _ = themes[theme]
            assert palette.contrast(fg, bg) >= 4.5, (role, theme)  # WCAG AA for text


def test_run_colors_are_lines_on_both_backgrounds_and_never_a_role_color():
    role_colors = [c for t in palette.ROLES.values() for theme in THEMES for c in t[theme]]
    role_colors += list(palette.ROLE_PLOT.values())
    hued = [c for c in role_colors if palette.saturation(c) > 40]  # the greys of "masked" have no hue to keep apart
    for color, marker, _ in palette.RUN_STYLES:
        for theme in THEMES:
            assert palette.contrast(color, palette.PAGE[theme]) >= 3, (color, theme)  # WCAG: lines 3:1
        assert color.lower() not in {c.lower() for c in role_colors}
        assert all(palette.hue_distance(color, c) >= 30 for c in hued), color
    markers = [m for _, m, _ in palette.RUN_STYLES]
    assert len(set(markers)) == len(markers)  # the runs differ by more than color
    assert {palette.run_style(m) for m in ("whole", "completion", "weighted")} == set(palette.RUN_STYLES)
    assert palette.run_style("assistant") == palette.run_style("completion")  # both are "the answers only"


def test_the_heatmap_ramp_is_grey_and_its_text_stays_readable():
    for theme in THEMES:
        r, g, b = palette.HEAT[theme]
        assert r == g == b  # neutral: no role's hue
        page = [int(palette.PAGE[theme][i:i + 2], 16) for i in (1, 3, 5)]
        for step in range(101):  # every cell the ramp can draw, with the ink it gets
            a, hot = palette.heat_opacity(step / 100)
            cell = "#" + "".join(f"{round(c * a + p * (1 - a)):02x}" for c, p in zip((r, g, b), page))
            ink = palette.PAGE[theme] if hot else palette.INK[theme]
            assert palette.contrast(ink, cell) >= 4.4, (theme, step, cell)  # ~WCAG AA for text
    final = {"heatmap": {"answer_positions": [2], "losses": {"whole": [None, 1.0, 9.0]}}}
    html = render.heatmap_html(final, ["a", "b", "c"])
    assert "rgba(var(--sv-heat)" in html and "sv-heat-hot" in html
    for role in palette.ROLE_PLOT.values():
        assert role.lower() not in html.lower()


def test_every_color_variable_the_css_uses_is_defined_by_the_palette_and_the_css_holds_no_role_color():
    css = open(os.path.join(ROOT, "assets", "style.css"), encoding="utf-8").read()
    defined = set(re.findall(r"(--sv-[\w-]+):", palette.css()))
    used = set(re.findall(r"var\((--sv-[\w-]+)", css)) | {"--sv-heat"}
    assert used - {"--sv-run"} <= defined, used - defined  # --sv-run: set per run, from RUN_STYLES
    written = {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}\b", css)}
    roles = {c.lower() for t in palette.ROLES.values() for theme in THEMES for c in t[theme]}
    assert not written & roles  # role colors are written in the palette only


def test_the_plots_draw_runs_and_roles_from_the_palette():
    curves = {"whole": {"train": [(1, 2.0)], "answer": [(1, 1.0)], "prompt": [(1, 1.5)]},
              "completion": {"train": [(1, 1.0)], "answer": [(1, 0.9)], "prompt": [(1, 9.0)]}}
    held = plots.held_out_figure(curves, 10)
    assert {t.line.color for t in held.data} == {palette.run_style("whole")[0], palette.run_style("completion")[0]}
    assert {t.marker.symbol for t in held.data} == {"circle", "square"}
    assert held.layout.title.text == plots.HELD_OUT_TITLE
    roles = plots.roles_figure({"whole": {"target": 3, "context": 0}, "answer": {"target": 1, "context": 2}})
    assert [t.marker.color for t in roles.data] == [palette.ROLE_PLOT["target"], palette.ROLE_PLOT["context"]]
