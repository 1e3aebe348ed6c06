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
