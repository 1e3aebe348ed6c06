"""The lesson (/?lesson=sft): every step's answer key is the label engine's (and the full tool's) labels, the
feedback says what a pick got right or wrong, and forged steps or picks are refused in one line."""

import html

import pytest

from sftviz import lesson, lesson_page, view
from sftviz.labels import prepare
from sftviz.tokenizer import load_tokenizer


def example(k):
    step = lesson.STEPS[k]
    return step, view.open_view(view.ViewRequest(step.sample, "sample", options=step.options))


TOKEN_STEPS = [k for k, s in enumerate(lesson.STEPS) if s.kind == "tokens"]
RUNS_STEP = next(k for k, s in enumerate(lesson.STEPS) if s.kind == "runs")
HUNT_STEP = next(k for k, s in enumerate(lesson.STEPS) if s.kind == "hunt")


@pytest.mark.parametrize("k", TOKEN_STEPS)
def test_each_steps_answer_is_what_trl_trains_and_what_the_full_tool_shows(k):
    from sftviz import data
    step, vw = example(k)
    seq = prepare(data.load_trl(step.sample).rows, load_tokenizer("default"), step.options).sequences[step.index]
    key = lesson.carrying_loss(seq)
    assert key == [t for t in range(1, len(seq.labels)) if seq.labels[t] != -100]
    shown, _ = vw.displayed(step.index)  # the full tool's view of the same example (padded in its batch)
    assert shown.roles[:len(seq.roles)] == seq.roles
    out = lesson_page.lesson_check({"lesson-index": k, "lesson-picks": ",".join(map(str, key))})
    assert 'data-right="true"' in out["lesson-feedback"]
    assert [r for r in _roles(out["lesson-tokens"])] == seq.roles  # the reveal: the engine's roles


def _roles(tokens_html):
    import re
    return re.findall(r'data-role="(\w+)"', tokens_html)


def test_the_lesson_covers_its_ideas_each_with_a_different_answer():
    keys = []
    for k in TOKEN_STEPS:
        step, vw = example(k)
        keys.append(lesson.carrying_loss(vw.prep.sequences[step.index]))
    assert keys[3] == []  # max_length: the answer is cut to nothing, TRL drops the example
    _, vw = example(3)
    assert vw.prep.sequences[0].dropped
    assert all(keys[k] for k in (0, 1, 2, 4, 5))
    _, vw = example(2)  # the EOS step: the end-of-sequence token is among the trained ones
    assert vw.token_texts(1)[keys[2][-1]] == "<|im_end|>"
    step, vw = example(5)  # packing: two documents in the row, the second's first token not trained
    seq = vw.prep.sequences[0]
    assert len(set(seq.sources)) == 4 and lesson.STEPS[5].question.startswith("Four")  # the question counts right
    second = seq.sources.index(seq.sources[-1])
    assert second > 0 and second not in keys[5] and second + 1 in keys[5]


def test_feedback_names_what_was_right_and_wrong():
    step, vw = example(1)  # answer only: " Paris", ".", "<|im_end|>"
    seq, texts = vw.prep.sequences[0], vw.token_texts(0)
    key = lesson.carrying_loss(seq)
    wrong = lesson.check(seq, [0, 2] + key[:1])
    words = " ".join(lesson.feedback_words(wrong, seq, texts))
    assert f"You found 1 of {len(key)} trained tokens" in words
    assert "is context" in words or "are context" in words
    assert "Position 0 is never trained" in words and "Missed:" in words and repr(texts[key[-1]]) in words
    right = lesson.check(seq, key)
    assert right.right and lesson.feedback_words(right, seq, texts) == [f"You found {len(key)} of {len(key)} "
                                                                         "trained tokens."]
    _, cut = example(3)
    none = lesson.check(cut.prep.sequences[0], [])
    assert none.right and lesson.feedback_words(none, cut.prep.sequences[0], cut.token_texts(0))[0].startswith(
        "Right: no token")


@pytest.mark.parametrize("form,needle", [
    ({"lesson-index": 99}, "the lesson has steps 1 to"),
    ({"lesson-index": -1}, "the lesson has steps 1 to"),
    ({"lesson-index": "1"}, "the lesson has steps 1 to"),
    ({"lesson-index": 1.5}, "the lesson has steps 1 to"),
    ({"lesson-index": True}, "the lesson has steps 1 to"),
    ({"lesson-index": 0, "lesson-picks": "1,2,999"}, "not tokens of this step"),
    ({"lesson-index": 0, "lesson-picks": "a,b"}, "not tokens of this step"),
    ({"lesson-index": 0, "lesson-picks": "1," * 100_000}, "not tokens of this step"),
    ({"lesson-index": 0, "lesson-picks": ["1"]}, "not tokens of this step"),
])
def test_forged_steps_and_picks_get_one_line(form, needle):
    out = lesson_page.lesson_check(form)
    assert list(out) == ["lesson-feedback"]  # nothing else changes
    message = html.unescape(out["lesson-feedback"])
    assert "sv-error" in message and needle in message and len(message) < 500
    moved = lesson_page.lesson_step({"lesson-index": form["lesson-index"]}, 1)
    if form["lesson-index"] in (0,):
        assert moved["lesson-index"] == 1


def test_moving_stays_within_the_lesson():
    assert lesson_page.lesson_step({"lesson-index": 0}, -1)["lesson-index"] == 0
    last = len(lesson.STEPS) - 1
    out = lesson_page.lesson_step({"lesson-index": last}, 1)
    assert out["lesson-index"] == last and f"Step {last + 1} of {last + 1}" in out["lesson-step"]
    assert "data-broken" not in out["lesson-tokens"]  # the bug hunt's answer is not in the markup before the reveal
    for k in TOKEN_STEPS + [RUNS_STEP]:
        out = lesson_page.lesson_step({"lesson-index": k})
        assert "data-role" not in out["lesson-tokens"] and "data-answer" not in out["lesson-tokens"]
    out = lesson_page.lesson_step({"lesson-index": 5})
    assert "?tokenizer=default&amp;mode=whole&amp;max_length=64&amp;i=0&amp;sample=lesson_text&amp;packing=bfd" \
        in out["lesson-open"]


def test_the_bug_hunts_answer_key_is_the_doctors():
    """The seeded broken rows (two prompts longer than max_length, one answer cut) are what the doctor flags, and
    the reveal says which are broken and why; a fine row picked is called fine."""
    step, vw = example(HUNT_STEP)
    broken = lesson.broken_examples(view.findings(vw))
    assert sorted(broken) == [1, 3, 5]
    assert [s.dropped for s in vw.prep.sequences] == [False, True, False, False, False, True]
    out = lesson_page.lesson_check({"lesson-index": HUNT_STEP, "lesson-picks": "1,3,5"})
    assert 'data-right="true"' in out["lesson-feedback"] and "You found 3 of 3 broken examples." in \
        html.unescape(out["lesson-feedback"])
    assert out["lesson-tokens"].count('data-broken="true"') == 3
    out = lesson_page.lesson_check({"lesson-index": HUNT_STEP, "lesson-picks": "0,1"})
    said = html.unescape(out["lesson-feedback"])
    assert "You found 1 of 3" in said and "example 1 is fine" in said and "Missed: example 4, example 6." in said
    assert "TRL drops them" in html.unescape(out["lesson-tokens"])  # the doctor's own words in the reveal


def test_the_training_step_hides_which_run_is_which_until_the_reveal():
    """The class preset's two runs stream as "Run A" / "Run B" (which is which is a coin flip per session); the
    reveal names them from the student's last curves, and says whether the pick was the answer-only run."""
    from sftviz import bounded
    letters = {s: lesson.run_letters(s) for s in ("s1", "s2", "s3", "s4", "s5", "s6")}
    assert {tuple(sorted(x.items())) for x in letters.values()} == {(("completion", "A"), ("whole", "B")),
                                                                    (("completion", "B"), ("whole", "A"))}
    token = bounded.OWNER.set("s1")
    try:
        updates = list(lesson_page.lesson_train({"lesson-index": RUNS_STEP}))
    finally:
        bounded.OWNER.reset(token)
    last = updates[-1]
    assert "Done in" in last["lesson-train-status"], last
    names = {t.name for t in last["lesson-plot"].data}
    assert names == {"Run A: answer", "Run A: prompt", "Run B: answer", "Run B: prompt"}
    curves, steps = last["lesson-curves"]
    assert steps == 80 and set(curves) == {"whole", "completion"}
    # what the reveal teaches is what happened: the answer-only run's held-out prompt loss ends far above
    assert curves["completion"]["prompt"][-1][1] > curves["whole"]["prompt"][-1][1] + 1
    answer = "AB".index(letters["s1"]["completion"])
    token = bounded.OWNER.set("s1")
    try:
        right = lesson_page.lesson_check({"lesson-index": RUNS_STEP, "lesson-picks": str(answer)}, last["lesson-curves"])
        wrong = lesson_page.lesson_check({"lesson-index": RUNS_STEP, "lesson-picks": str(1 - answer)})
    finally:
        bounded.OWNER.reset(token)
    assert 'data-right="true"' in right["lesson-feedback"]
    assert {t.name for t in right["lesson-plot"].data} >= {"answer only: prompt", "whole text: prompt"}
    assert 'data-right="false"' in wrong["lesson-feedback"] and "Not quite" in wrong["lesson-feedback"]
    assert "lesson-plot" not in wrong  # no curves kept: the plot stays as it is
    assert "this step has no training" in list(lesson_page.lesson_train({"lesson-index": 0}))[-1]["lesson-train-status"]
    token = bounded.OWNER.set("s1")  # after the reveal, the stream (a press again, the class's run) keeps the names
    try:
        again = list(lesson_page.lesson_train({"lesson-index": RUNS_STEP}))[-1]
        lesson_page.lesson_step({"lesson-index": RUNS_STEP})  # the step again: letters until the next Check
        letters_again = list(lesson_page.lesson_train({"lesson-index": RUNS_STEP}))[-1]
    finally:
        bounded.OWNER.reset(token)
    assert {t.name for t in again["lesson-plot"].data} >= {"answer only: prompt", "whole text: prompt"}
    assert {t.name for t in letters_again["lesson-plot"].data} >= {"Run A: prompt", "Run B: prompt"}


# --- In the browser ---------------------------------------------------------------------------------------

PICKED_ROLES = "() => Array.from(document.querySelectorAll('#lesson-tokens .sv-pick')).map(e => e.dataset.role)"


def test_a_student_goes_through_every_step(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    pg = context.new_page()
    try:
        pg.goto(server.rstrip("/") + "/?lesson=sft", wait_until="load")
        pg.locator("#lesson-tokens .sv-pick").first.wait_for(timeout=60000)
        assert not pg.locator("#tool").is_visible() and "lesson=sft" in pg.url
        assert pg.locator("#lesson-tokens [data-role]").count() == 0  # no answer before the reveal
        # a wrong prediction first: step 1 is whole text, where only position 0 carries no loss
        pg.locator("#lesson-tokens .sv-pick[data-pos='0']").click()
        pg.locator("#lesson-check").click()
        pg.locator("#lesson-feedback .sv-feedback").wait_for(timeout=10000)
        said = pg.locator("#lesson-feedback").inner_text()
        assert "You found 0 of 10" in said and "Position 0 is never trained" in said
        assert pg.locator("#lesson-feedback .sv-feedback").get_attribute("data-right") == "false"
        pg.locator("#lesson-retry").click()  # the same step again, its tokens unrevealed
        pg.wait_for_function("() => !document.querySelector('#lesson-tokens [data-role]')", timeout=10000)
        for k in range(len(lesson.STEPS)):
            assert f"Step {k + 1} of {len(lesson.STEPS)}" in pg.locator("#lesson-step").inner_text()
            step, vw = example(k)
            if step.kind == "runs":
                runs_step(pg)
            elif step.kind == "hunt":  # the doctor's answer key
                assert pg.locator("#lesson-tokens .sv-card").count() == 6 and not pg.locator("#lesson-train").is_visible()
                for e in sorted(lesson.broken_examples(view.findings(vw))):
                    pg.locator(f"#lesson-tokens .sv-card[data-pos='{e}']").click()
                pg.locator("#lesson-check").click()
                pg.wait_for_function(RIGHT, timeout=10000)
                assert pg.locator("#lesson-tokens [data-broken='true']").count() == 3
            else:
                seq = vw.prep.sequences[step.index]
                for t in lesson.carrying_loss(seq):  # the right prediction
                    pg.locator(f"#lesson-tokens .sv-pick[data-pos='{t}']").click()
                pg.locator("#lesson-check").click()
                pg.wait_for_function(RIGHT, timeout=10000)
                assert pg.evaluate(PICKED_ROLES) == seq.roles  # the reveal: the full tool's roles
            if k + 1 < len(lesson.STEPS):
                pg.locator("#lesson-next").click()
                pg.wait_for_function(f"() => document.querySelector('#lesson-step').innerText.includes("
                                     f"'Step {k + 2} of')", timeout=10000)
                if lesson.STEPS[k + 1].kind != "hunt":  # (the hunt shows the labels: the question is which rows)
                    assert pg.locator("#lesson-tokens [data-role]").count() == 0
                assert pg.locator("#lesson-feedback").inner_text().strip() == ""
        link = pg.locator("#lesson-open a").get_attribute("href")
        assert link.startswith("?") and "sample=lesson_bugs" in link and "max_length=32" in link
    finally:
        context.close()


RIGHT = "() => document.querySelector('#lesson-feedback .sv-feedback[data-right=\"true\"]')"


def runs_step(pg):
    """The training step in the browser: Train streams "Run A" / "Run B"; a pick is checked against which run was
    answer only (the page marks it at the reveal: which is which differs between students)."""
    assert pg.locator("#lesson-train").is_visible() and pg.locator("#lesson-tokens .sv-run").count() == 2
    pg.locator("#lesson-train").click()
    pg.wait_for_function("() => document.querySelector('#lesson-train-status')?.innerText.includes('Done in')",
                         timeout=90000)
    pg.wait_for_function("() => document.querySelectorAll('#lesson-plot .legendtext').length === 4", timeout=10000)
    legend = pg.evaluate("() => Array.from(document.querySelectorAll('#lesson-plot .legendtext')).map(e => e.textContent)")
    assert sorted(legend) == ["Run A: answer", "Run A: prompt", "Run B: answer", "Run B: prompt"]
    pg.locator("#lesson-tokens .sv-run[data-pos='0']").click()
    pg.locator("#lesson-check").click()
    pg.locator("#lesson-feedback .sv-feedback").wait_for(timeout=10000)
    answer = pg.locator("#lesson-tokens .sv-run[data-answer='true']").get_attribute("data-pos")
    right = pg.locator("#lesson-feedback .sv-feedback").get_attribute("data-right")
    assert right == ("true" if answer == "0" else "false")
    pg.wait_for_function("() => Array.from(document.querySelectorAll('#lesson-plot .legendtext'))"
                         ".some(e => e.textContent.includes('answer only'))", timeout=10000)  # the real names


def test_a_teacher_and_three_students(browser, server):
    """The teacher's view counts the three students' Checks within a few seconds, and moving the class moves
    them; a student who then goes back stays where they went."""
    teacher_context = browser.new_context(viewport={"width": 1366, "height": 768})
    students = [browser.new_context(viewport={"width": 390, "height": 844}) for _ in range(3)]
    try:
        teacher = teacher_context.new_page()
        teacher.goto(server.rstrip("/") + "/?teach=sft", wait_until="load")
        teacher.locator("#class-code code").wait_for(timeout=60000)
        code = teacher.locator("#class-code code").inner_text().strip()
        link = teacher.locator("#class-link a").get_attribute("href")
        assert link.endswith(f"/?lesson=sft&class={code}") and not teacher.locator("#tool").is_visible()
        pages = []
        for k, context in enumerate(students):
            pg = context.new_page()
            pg.goto(link, wait_until="load")
            pg.locator("#lesson-tokens .sv-pick").first.wait_for(timeout=60000)
            assert f"You are in class {code}" in pg.locator("#lesson-feedback").inner_text()
            pg.locator(f"#lesson-tokens .sv-pick[data-pos='{k}']").click()  # student 0 picks position 0: wrong
            pg.locator("#lesson-check").click()
            pg.locator("#lesson-feedback .sv-feedback").wait_for(timeout=10000)
            pages.append(pg)
        teacher.wait_for_function("() => document.querySelector('#class-summary tr[data-step=\"1\"] "
                                  "td[data-col=\"checked\"]')?.innerText === '3'", timeout=10000)
        assert "3 students joined" in teacher.locator("#class-summary").inner_text()
        assert teacher.locator("#class-summary tr[data-step='1'] td[data-col='wrong']").inner_text().startswith("'")
        teacher.locator("#class-step input").click()
        teacher.get_by_role("option", name=lesson_page.step_choices()[2]).click()
        teacher.locator("#class-move").click()
        for pg in pages:
            pg.wait_for_function("() => document.querySelector('#lesson-step')?.innerText.includes('Step 3 of')",
                                 timeout=10000)
        pages[0].locator("#lesson-prev").click()
        pages[0].wait_for_function("() => document.querySelector('#lesson-step')?.innerText.includes('Step 2 of')",
                                   timeout=10000)
        pages[0].wait_for_timeout(4500)  # two of its page's questions later, it is still where it went
        assert "Step 2 of" in pages[0].locator("#lesson-step").inner_text()
        teacher.wait_for_function("() => document.querySelector('#class-summary tr[data-step=\"3\"] "
                                  "td[data-col=\"present\"]')?.innerText === '2'", timeout=10000)
        assert "key" not in teacher.url and teacher.locator("#class-link img.sv-qr").count() == 1
        teacher.reload(wait_until="load")  # the teacher's reload keeps the class (the browser kept its key)
        teacher.locator("#class-code code").wait_for(timeout=60000)
        assert teacher.locator("#class-code code").inner_text().strip() == code
        teacher.wait_for_function("() => document.querySelector('#class-summary')?.innerText.includes('3 students')",
                                  timeout=10000)
    finally:
        for context in [teacher_context, *students]:
            context.close()
