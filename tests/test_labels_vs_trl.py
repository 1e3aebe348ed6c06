"""The label engine against the oracle: TRL's real SFTTrainer + collator, on every type x mode x option."""

import json

import pytest

from conftest import get_tokenizer, shared_path
from sftviz import data
from sftviz.labels import MODES, Options, TRLRefusal, prepare
from sftviz.packing import STRATEGIES
from trl_reference import trl_rows

pytest.importorskip("trl")


def oracle_sample(name):
    with open(shared_path("oracle", "samples", f"{name}.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def shared_data(name, n, mapping=None):
    rows = data.load(shared_path("assets", "data", name), limit=n)
    return data.to_trl(rows) if mapping else rows


# Every refusal the matrix meets: kind -> (TRL's error type, words in TRL's message, words in sftviz's).
# "Both refused" counts as agreement only when both refused for the same kind of reason.
REFUSALS = {
    "not conversational": (ValueError, "dataset is not conversational", "dataset is not conversational"),
    "no chat template": (ValueError, "tokenizer.chat_template is not set", "no chat template"),
    "no chat template for assistant_only_loss": (TypeError, "expected string", "needs a chat template"),
    "template not trainable": (ValueError, "not training-compatible", "{% generation %}"),
}


def refusal_kind(error, ours=False):
    """The REFUSALS kind of TRL's error (or, `ours`, of sftviz's), None for any other error."""
    for kind, (error_type, trl_words, our_words) in REFUSALS.items():
        if (our_words in str(error)) if ours else (isinstance(error, error_type) and trl_words in str(error)):
            return kind
    return None


def check(rows, tok_name, mode="auto", max_length=1024, packing=False, strategy="bfd", text_field="text",
          tok=None):
    tok = tok or get_tokenizer(tok_name)
    try:
        expected, dropped, trainer = trl_rows(rows, tok, mode, max_length, packing, strategy, text_field)
    except (ValueError, RuntimeError, KeyError, TypeError) as trl_error:
        kind = refusal_kind(trl_error)
        assert kind, f"TRL refused for a reason the REFUSALS table does not know: {trl_error!r}"
        with pytest.raises((TRLRefusal, ValueError)) as ours:
            prepare(rows, tok, Options(mode, max_length, packing, strategy, text_field))
        assert refusal_kind(ours.value, ours=True) == kind, (kind, str(ours.value))
        return f"refused: {trl_error}"
    got = prepare(rows, tok, Options(mode, max_length, packing, strategy, text_field))
    kept = [s for s in got.sequences if not s.dropped]
    assert len(kept) == len(expected)
    for i, (s, e) in enumerate(zip(kept, expected)):
        assert s.input_ids == e["input_ids"], f"row {i} input_ids"
        assert s.labels == e["labels"], f"row {i} labels"
        assert s.attention_mask == e.get("attention_mask"), f"row {i} attention_mask"
        assert s.position_ids == e.get("position_ids"), f"row {i} position_ids"
    if dropped is not None:
        assert [s.sources[0] if s.sources else None for s in got.sequences if s.dropped] == dropped
    assert got.completion_only_loss == trainer.completion_only_loss
    assert got.padding_free == trainer.padding_free
    assert got.pad_token_id == trainer.processing_class.pad_token_id
    return got


# Every TRL dataset type x every mode x tokenizers with different BOS/EOS/pad/template behaviour.
@pytest.mark.parametrize("tok_name", ["default", "gpt2", "llamastyle", "chatml", "phi3"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("sample", ["lm_text", "prompt_completion", "messages", "conv_prompt_completion"])
def test_type_by_mode(sample, mode, tok_name):
    check(oracle_sample(sample), tok_name, mode)


@pytest.mark.parametrize("max_length", [6, 12, 40])
@pytest.mark.parametrize("mode", ["auto", "whole", "assistant"])
@pytest.mark.parametrize("sample", ["lm_text", "prompt_completion", "messages", "conv_prompt_completion"])
def test_truncation_and_drops(sample, mode, max_length):
    got = check(oracle_sample(sample), "chatml", mode, max_length)
    if not isinstance(got, str):
        assert all(len(s.input_ids) <= max_length for s in got.sequences)


def test_long_prompt_is_dropped_in_answer_only_mode_but_kept_in_whole_mode():
    rows = oracle_sample("prompt_completion")
    auto = check(rows, "gpt2", "auto", 20)
    whole = check(rows, "gpt2", "whole", 20)
    assert [s.sources[0] for s in auto.sequences if s.dropped] == [3]
    assert not any(s.dropped for s in whole.sequences)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("max_length", [16, 64])
@pytest.mark.parametrize("sample", ["lm_text", "prompt_completion", "messages"])
@pytest.mark.parametrize("tok_name", ["default", "gpt2"])
def test_packing(sample, max_length, strategy, tok_name):
    check(oracle_sample(sample), tok_name, "auto", max_length, True, strategy)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("sample", ["quiz_prompt_completion", "quiz_chat"])
def test_bundled_samples_with_default_tokenizer(sample, mode):
    got = check(data.load(sample, limit=80), "default", mode)
    if not isinstance(got, str):
        assert any(s.num_scored for s in got.sequences)


def test_bundled_sample_packed():
    check(data.load("quiz_prompt_completion", limit=200), "default", "auto", 128, True, "bfd")
    check(data.load("quiz_chat", limit=200), "default", "assistant", 96, True, "bfd_split")


def test_bundled_mapped_samples():
    check(data.to_trl(data.load("quiz_question_answer")), "default", "auto")
    learner = data.load("quiz_prompt_answer_text")  # TRL stops on it as it is: its mapped fix
    check(data.to_trl(learner, data.decide(learner[0], columns="map")), "default", "auto")


def test_packing_across_chunks_of_1000():
    rows = data.load("quiz_prompt_completion") * 3  # 1200 rows: two datasets.map chunks
    check(rows, "default", "auto", 100, True, "bfd")
    check(rows, "default", "whole", 100, True, "wrapped")


# Real tokenizers and datasets from ../shared/assets.
def test_gsm8k_gpt2_answer_only_and_whole():
    rows = shared_data("gsm8k_test.jsonl", 60, mapping=True)
    got = check(rows, "gpt2", "auto", 128)
    assert any(s.dropped for s in got.sequences) or all(s.num_scored for s in got.sequences)
    check(rows, "gpt2", "whole", 128)
    check(rows, "gpt2", "auto", 256, True, "bfd")


def test_alpaca_roleplay_default_and_phi3():
    rows = shared_data("gpteacher_roleplay_alpaca.jsonl", 40, mapping=True)
    check(rows, "default", "auto", 256)
    check(rows, "phi3", "completion", 256)


def test_oasst_phi3_template_swapped_for_assistant_only():
    rows = shared_data("oasst_en95_messages.jsonl", 30)
    got = check(rows, "phi3", "assistant", 512)
    assert got.chat_template is not None  # TRL's phi3_training.jinja
    check(rows, "phi3", "whole", 512)


def test_c4_text_gpt2_wrapped():
    rows = shared_data("c4_demo_text.jsonl", 20)
    check(rows, "gpt2", "auto", 64, True, "wrapped")
    check(rows, "gpt2", "auto", 64)


def test_smollm3_template_with_generation_tags():
    import copy
    tok = copy.deepcopy(get_tokenizer("phi3"))
    with open(shared_path("assets", "chat_templates", "smollm3_chat_template.jinja"), encoding="utf-8") as f:
        tok.chat_template = f.read()
    rows = [{**r, "chat_template_kwargs": {"enable_thinking": False}}
            for r in shared_data("oasst_en95_messages.jsonl", 10)]
    got = check(rows, "phi3", "assistant", 1024, tok=tok)
    assert got.chat_template is None


def test_plain_chatml_template_is_refused_like_trl():
    refusal = check(oracle_sample("messages"), "chatml_plain", "assistant")
    assert refusal.startswith("refused")
    with pytest.raises(TRLRefusal, match="generation"):
        prepare(oracle_sample("messages"), get_tokenizer("chatml_plain"), Options("assistant"))


def test_assistant_mode_on_text_is_refused():
    with pytest.raises(TRLRefusal, match="not conversational"):
        prepare(oracle_sample("prompt_completion"), get_tokenizer("default"), Options("assistant"))


def test_sharegpt_roles_kept_by_trl():
    rows = [{"conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello."}]},
            {"conversations": [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "4"}]}]
    check(rows, "default", "auto")
    assert check(rows, "default", "assistant").startswith("refused")  # TRL tests the raw first row
    human_gpt = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]
    check(human_gpt, "default", "whole")  # roles stay "human"/"gpt" in the rendered text
    check(data.to_trl(human_gpt), "default", "assistant")  # our visible mapping fixes it
