"""The page's roles are the label engine's roles: parse the HTML and compare, so the page can't disagree with TRL."""

import re

import pytest

from sftviz import render, view
from sftviz.labels import Options, prepare


def open_view(source, mode, max_length=1024, packing=False, **kw):
    return view.open_view(view.ViewRequest(source, options=Options(mode, max_length, packing), **kw))

SPAN = re.compile(r'<span class="sv-tok[^"]*" data-role="(\w+)" data-pos="(\d+)"')


@pytest.mark.parametrize("sample,mode,packing", [
    ("quiz_prompt_completion", "completion", False), ("quiz_prompt_completion", "whole", False),
    ("quiz_chat", "assistant", False), ("quiz_chat", "whole", True), ("quiz_question_answer", "auto", False),
])
def test_rendered_roles_equal_engine_roles(sample, mode, packing):
    v = open_view(sample, mode, 256, packing)
    engine = prepare(v.loaded.rows, v.loaded.tok, Options(mode, 256, packing, "bfd"))
    for i in (0, 1, v.n - 1):
        token_html = view.example_views(v, i)["token-view"]
        shown, _ = v.displayed(i)
        spans = SPAN.findall(token_html)
        assert [int(p) for _, p in spans] == list(range(len(shown.input_ids)))
        assert [r for r, _ in spans] == shown.roles
        # the unpadded part is exactly the engine's sequence
        n = len(engine.sequences[i].input_ids)
        assert shown.input_ids[:n] == engine.sequences[i].input_ids
        assert shown.roles[:n] == engine.sequences[i].roles
        assert all(r == "masked" for r in shown.roles[n:])


def test_padding_is_masked_and_batch_matches_trl_collator():
    pytest.importorskip("trl")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    v = open_view("quiz_prompt_completion", "completion")
    seqs = v.prep.sequences[:8]
    batch = DataCollatorForLanguageModeling(pad_token_id=v.prep.pad_token_id)(
        [{"input_ids": s.input_ids, "labels": s.labels} for s in seqs])
    for k in range(8):
        shown, _ = v.displayed(k)
        assert shown.input_ids == batch["input_ids"][k].tolist()
        assert shown.labels == batch["labels"][k].tolist()
        assert shown.attention_mask == batch["attention_mask"][k].tolist()


def test_shift_view_pairs_each_input_with_the_next_label():
    v = open_view("quiz_prompt_completion", "completion")
    seq, _ = v.displayed(0)
    html = render.shift_view(seq, v.token_texts(0) + ["<|pad|>"] * 20, show_all=True)
    scored = re.findall(r'<td class="sv-pair-on">', html)
    assert len(scored) == 3 * seq.num_scored  # token row, arrow row, scored row for each scored pair
    assert "never scored" in html and "predicts nothing" in html
    # the default window starts just before the first trained pair, so it is visible without scrolling
    first = min(t for t in range(1, len(seq.labels)) if seq.labels[t] != -100)
    windowed = render.shift_view(seq, v.token_texts(0) + ["<|pad|>"] * 20)
    shown = [int(x) for x in re.findall(r"<td>(\d+)</td>", windowed)]
    assert shown[0] <= first - 1 <= shown[0] + 8


def test_html_is_escaped():
    from sftviz.labels import Sequence
    seq = Sequence([1, 2], [-100, 2], [1, 1], None, [0, 0])
    html = render.tokens_html(seq, ["<script>", "&"])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_bad_inputs_give_clear_errors():
    from sftviz.data import DataError
    with pytest.raises(DataError):
        open_view("nope", "completion")
    with pytest.raises(ValueError, match="not conversational"):
        open_view("quiz_prompt_completion", "assistant")


def test_hub_box_takes_id_config_split(tmp_path):
    from sftviz import page

    def source(hub_id, tab="hub"):
        return page._source({"source-tab": tab, "sample": "s", "upload-path": None, "hub-id": hub_id})
    assert source("openai/gsm8k main test") == ("openai/gsm8k", "hub", "main", "test")
    assert source("openai/gsm8k") == ("openai/gsm8k", "hub", None, "train")
    assert source("openai/gsm8k", tab="sample") == ("s", "sample", None, "train")
    with pytest.raises(ValueError, match="type a Hub dataset id"):
        source("")
    # the same load_dataset call a Hub id gets, on a local folder with two splits
    (tmp_path / "train.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "test.jsonl").write_text('{"text": "b"}\n{"text": "c"}\n')
    v_train = open_view(str(tmp_path), "whole", 64)
    v_test = open_view(str(tmp_path), "whole", 64, split="test")
    assert (v_train.n, v_test.n) == (1, 2)


def test_one_meaning_of_label_on_every_view():
    """labels = a copy of input_ids, -100 where not trained; the model shifts them: the literal lists, the
    tooltips, the Shift table and the explainers all say it that way."""
    from sftviz.labels import LABELS_MEANING, literal
    v = open_view("quiz_prompt_completion", "completion")
    out = view.example_views(v, 0)
    seq, _ = v.displayed(0)
    pre = re.search(r"<pre>(.*?)</pre>", out["token-view"], re.S).group(1)
    assert f"labels    = {seq.labels}" in pre and f"input_ids = {seq.input_ids}" in pre
    assert f"labels = {literal(seq.labels)}" in out["token-view"]  # the short form, in the summary line
    t = next(k for k, lab in enumerate(seq.labels) if lab != -100)
    assert f"labels[{t}] = {seq.labels[t]} (trained: scored on the output at {t - 1})" in out["token-view"]
    assert f"labels[{t}] = {seq.labels[t]}" in out["token-view"].split('class="sv-tokens"')[1]
    assert [int(x) for x in re.findall(r'<td class="sv-label">(-?\d+)</td>', out["shift-view"])] == \
        seq.labels[max(0, t - 5):max(0, t - 5) + 12]
    assert LABELS_MEANING in view.EXPLAIN_LABELS and "labels[t+1]" in view.EXPLAIN_SHIFT
    # the Tokens and Compare tabs count the same way (trained = a label that is not -100)
    assert render.counts_phrase(seq) in out["token-view"] and render.counts_phrase(seq) in out["mode-compare"]


def test_the_shapes_table_says_what_trl_trains_on_each_sample():
    from sftviz import data
    from sftviz.labels import resolves_to
    from sftviz.tokenizer import load_tokenizer
    assert {s.sample for s in view.SHAPES} <= set(data.samples())
    for shape in view.SHAPES:
        if shape.trains == "TRL stops":
            with pytest.raises(data.TRLStops):
                data.load_trl(shape.sample)
        elif shape.trains == "TRL cannot read it":
            loaded = data.load_trl(shape.sample)
            assert loaded.decision.reading == "map" and "KeyError" in loaded.decision.as_is
        else:  # the labels themselves, under TRL's default (SFTConfig() as is)
            rows = data.load_trl(shape.sample, 3).rows
            assert resolves_to("auto", rows[0]) == shape.trains, shape
            for seq in prepare(rows, load_tokenizer("default"), Options("auto")).sequences:
                roles = seq.roles
                assert ("context" in roles) == (shape.trains == "answer only"), shape
                assert roles[-1] == "target"  # the EOS (or end of turn) is trained either way
        assert f"(?sample={shape.sample})" in view.shapes_table()


def test_generations_say_what_each_answer_did():
    from sftviz.verdict import caveats, outcome, verdict
    ref = " Rome.<|im_end|>"
    empty = {"text": "<|im_end|>", "empty": True, "stopped_at_eos": True, "next_turn": False}
    assert outcome(empty, ref) == ["✗ empty: EOS at once"]  # never "stops at EOS"
    right = {"text": " Rome.<|im_end|>", "empty": False, "stopped_at_eos": True, "next_turn": False}
    assert outcome(right, ref) == ["✓ the reference answer", "✓ stops at EOS"]
    wrong = {"text": " Paris. Question:", "empty": False, "stopped_at_eos": False, "next_turn": True}
    assert outcome(wrong, ref) == ["✗ not the reference", "✗ no EOS: never stops", "✗ writes the next turn"]
    html = render.generations_html({"generations": [{"prompt": "Q?", "reference": ref,
                                                     "outputs": {"whole": empty, "completion": right}}]})
    assert "stops at EOS" in html.split("answer only")[1] and "stops at EOS" not in html.split("answer only")[0]
    assert '<span class="sv-nowrap">&lt;|im_end|&gt;</span>' in html  # a special token never wraps inside
    curves = {"whole": {"answer": [(10, 1.5)], "prompt": [(10, 0.5)]},
              "completion": {"answer": [(10, 1.49)], "prompt": [(10, 9.0)]}}
    assert verdict(curves).endswith("about the same.")
    diverged = {"whole": {"answer": [(10, float("nan"))]}, "completion": {"answer": [(10, 1.0)]}}
    assert verdict(diverged) == ""  # a NaN is no score: nothing to compare
    said = " ".join(caveats(curves, {"train": 8, "held_out": 2}))
    assert "Only 8 training examples" in said and "held-out prompt loss 9.00 vs 0.50" in said
    assert "Only" not in " ".join(caveats(curves, {"train": 300, "held_out": 32}))
