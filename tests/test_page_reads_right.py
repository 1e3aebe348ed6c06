"""The page as a newcomer meets it, in headless Chromium at a laptop's 1366x768 and a phone's 390x844: the tokens
on the first screen, one meaning of "label" (the literal list, as `inspect --json` prints it), the Train tab's
verdict, nothing clipped or overlapping, run colors that are not role colors, modes that say what they do."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from sftviz import palette

SIZES = {"laptop": (1366, 768), "phone": (390, 844)}


@pytest.fixture(params=list(SIZES))
def sized(request, browser, server):
    width, height = SIZES[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
    page.size = request.param
    yield page
    context.close()


def rect(page, selector):
    return page.evaluate("(s) => { const r = document.querySelector(s).getBoundingClientRect(); "
                         "return {top: r.top, left: r.left, right: r.right, bottom: r.bottom}; }", selector)


def test_the_tokens_are_on_the_first_screen_and_every_tab_is_readable(sized):
    page = sized
    height = SIZES[page.size][1]
    if page.size == "phone":  # the settings start closed on a phone, so the results come first
        page.wait_for_function("() => !document.querySelector('#settings > button.label-wrap.open')", timeout=10000)
    assert rect(page, "#token-view .sv-tokens")["top"] < height - 40  # a line of tokens at least
    tabs = page.locator("#main-tabs [role=tab]")
    names = [tabs.nth(k).inner_text().strip() for k in range(tabs.count())]
    assert {"Tokens", "Shift", "Compare modes", "Train: whole vs answer", "Doctor"} <= set(names)
    width = SIZES[page.size][0]
    for k in range(tabs.count()):  # every tab on screen, with its name: none behind an unlabeled menu
        box = tabs.nth(k).bounding_box()
        assert tabs.nth(k).is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= width, names[k]
    assert page.locator("#search input, #search textarea").first.get_attribute("aria-label") or \
        page.get_by_label("Search the examples' text").count()
    if page.size == "laptop":  # the Shift table fits the laptop's width: no column cut off at the edge
        page.get_by_role("tab", name="Shift").click()
        fits = "() => { const e = document.querySelector('#shift-view .sv-shift-scroll'); " \
               "return e.scrollWidth <= e.clientWidth + 1; }"
        page.locator("#shift-view .sv-shift").wait_for()
        assert page.evaluate(fits)


def test_the_literal_labels_row_is_what_inspect_json_prints(page, server):
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-literal").wait_for(timeout=60000)
    out = subprocess.run([sys.executable, "-m", "sftviz", "inspect", "quiz_prompt_completion", "--limit", "1",
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    expected = json.loads(out.stdout.splitlines()[0])
    page.locator("#token-view .sv-literal summary").click()  # opened as a reader opens it
    text = page.locator("#token-view .sv-literal pre").inner_text()
    lines = {k.strip(): v for k, v in (line.split(" = ", 1) for line in text.splitlines())}
    ids, labels = json.loads(lines["input_ids"].split("  #")[0]), json.loads(lines["labels"])
    n = len(expected["labels"])
    assert labels[:n] == expected["labels"] and ids[:n] == expected["input_ids"]
    assert set(labels[n:]) <= {-100}  # the rest: padding to the longest of its batch, never trained
    summary = page.locator("#token-view .sv-literal summary").inner_text()
    assert "labels = [-100]*" in summary and str(expected["labels"][-1]) in summary
    # the Shift tab's third row: labels[t] as TRL stores them, the same numbers
    page.get_by_role("tab", name="Shift").click()
    cells = page.locator("#shift-view .sv-label").all_inner_texts()
    first = int(page.locator("#shift-view tr").first.locator("td").first.inner_text())
    assert [int(c) for c in cells] == labels[first:first + len(cells)]


def run_colors(page, plot):
    return page.evaluate(f"() => document.querySelector('{plot} .js-plotly-plot').data.map(t => t.line.color)")


def inside(a, b, slack=1):
    return a["left"] >= b["left"] - slack and a["right"] <= b["right"] + slack


def overlap(a, b):
    return not (a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or
                b["bottom"] <= a["top"])


PARTS_JS = """(plot) => { const out = {};
  for (const [name, sel] of [["title", ".gtitle"], ["x title", ".xtitle"], ["y title", ".ytitle"],
                             ["legend", ".legend"]]) {
    const e = document.querySelector(plot + ' ' + sel); if (!e) continue;
    const r = e.getBoundingClientRect(); out[name] = {top: r.top, left: r.left, right: r.right, bottom: r.bottom}; }
  return out; }"""

LABELS_JS = """() => Array.from(document.querySelectorAll('#train-tab label')).filter(l => l.offsetParent)
  .map(l => { const r = l.getBoundingClientRect(), b = l.closest('.block').getBoundingClientRect();
              return {text: l.innerText.trim(), label: {left: r.left, right: r.right},
                      block: {left: b.left, right: b.right}}; })"""


def test_the_train_tab_says_the_verdict_and_nothing_is_clipped(sized):
    page = sized
    page.get_by_role("tab", name="Train: whole vs answer").click()
    page.locator("#train-steps input").fill("60")
    page.locator("#train-button").click()
    page.locator("#train-verdict .sv-verdict").wait_for(timeout=180000)
    verdict = page.locator("#train-verdict").inner_text()
    assert "Held-out answer loss (lower is better): " in verdict and "nats/token" in verdict
    assert "does not learn to write the prompts" in verdict and "cannot know facts" in verdict
    # the fair plot first; the not-comparable one folded under "More"
    assert rect(page, "#held-out-plot")["top"] < rect(page, "#more-train")["top"]
    assert not page.locator("#train-plot").is_visible()
    for label in page.evaluate(LABELS_JS):  # no checkbox or field name cut by its box
        assert inside(label["label"], label["block"]), label
    page.locator("#more-train > button").click()
    page.locator("#train-plot .js-plotly-plot").wait_for()
    for plot in ("#held-out-plot", "#train-plot"):
        parts = page.evaluate(PARTS_JS, plot)
        assert {"title", "x title", "legend"} <= set(parts), parts
        names = list(parts)
        for i, a in enumerate(names):  # no title, axis title or legend drawn over another
            for b in names[i + 1:]:
                assert not overlap(parts[a], parts[b]), (plot, a, b, parts)
        assert inside(parts["title"], rect(page, plot)), (plot, parts["title"])
    # a run's color is never a role's: role colors are read from the page's token spans
    roles = page.evaluate("""() => ['target', 'context', 'masked'].flatMap(r => {
        const e = document.querySelector(`#token-view .sv-tok[data-role="${r}"]`)
                  || document.querySelector(`.sv-legend .sv-tok[data-role="${r}"]`);
        const s = getComputedStyle(e); return [s.backgroundColor, s.textDecorationColor]; })""")
    roles = [hexa(c) for c in roles if hexa(c)] + list(palette.ROLE_PLOT.values())
    for color in set(run_colors(page, "#held-out-plot") + run_colors(page, "#train-plot")):
        for role in roles:
            if palette.saturation(role) > 40:  # the greys of "masked" have no hue to keep apart
                assert palette.hue_distance(color, role) >= 30, (color, role)
            assert color.lower() != role.lower()
    # every generated answer is flagged by what it did (an empty one never "stops at EOS": tests/test_render.py)
    runs = page.locator("#generations .sv-gen-run").all()
    assert len(runs) == 8 and all(r.locator(".sv-flag").inner_text().strip() for r in runs)


def hexa(css):
    """'rgb(1, 2, 3)' -> '#010203' (None for a transparent or unparsable color)."""
    if not css.startswith("rgb"):
        return None
    parts = css[css.index("(") + 1:css.index(")")].replace("/", ",").split(",")
    if len(parts) == 4 and float(parts[3]) == 0:
        return None
    return "#" + "".join(f"{int(float(p)):02x}" for p in parts[:3])


def test_modes_start_at_the_trl_default_and_say_what_it_resolves_to(page, server):
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
    assert "TRL default → answer only" in page.locator("#mode label:has(input:checked)").inner_text()
    page.locator("#sample input").click()
    page.get_by_role("option", name="quiz_text").click()
    page.wait_for_function("() => document.querySelector('#mode').innerText.includes('TRL default → whole text')",
                           timeout=30000)
    assert page.locator("#mode input[value=completion]").count() == 0  # answer only does nothing on text
    assert "no prompt/completion split" in page.locator("#mode").inner_text()
    assert "context" not in page.evaluate("""() => Array.from(document.querySelectorAll(
        '#token-view .sv-tokens .sv-tok')).map(e => e.dataset.role)""")
    assert page.locator("#status .sv-error").count() == 0  # no warning about a choice nobody made


def test_a_failed_request_greys_the_view_it_leaves(page, server):
    page.goto(server, wait_until="load")
    page.locator("#token-view .sv-tokens").wait_for(timeout=60000)
    opacity = "() => getComputedStyle(document.querySelector('#token-view')).opacity"
    assert float(page.evaluate(opacity)) == 1
    page.locator("#max-length input").fill("0")
    page.locator("#max-length input").press("Enter")
    page.locator("#status .sv-error").wait_for(timeout=20000)
    assert "max_length must be" in page.locator("#status").inner_text()
    assert float(page.evaluate(opacity)) < 0.5  # the last good view, greyed: not what the settings say
    page.locator("#max-length input").fill("1024")
    page.locator("#max-length input").press("Enter")
    page.wait_for_function("() => !document.querySelector('#status .sv-error')", timeout=20000)
    assert float(page.evaluate(opacity)) == 1
