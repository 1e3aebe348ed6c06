import os

from sftviz import tokenizer
from sftviz.tokenizer import load_tokenizer, token_texts


def test_default_tokenizer_is_deterministic_and_small(tmp_path):
    a = tokenizer.build_default(str(tmp_path / "a"))
    b = tokenizer.build_default(str(tmp_path / "b"))
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert 1000 <= len(a) <= tokenizer.VOCAB_SIZE
    assert (a.bos_token, a.eos_token, a.pad_token) == ("<|bos|>", "<|im_end|>", "<|pad|>")


def test_default_is_cached_and_loads_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("SFTVIZ_CACHE", str(tmp_path))
    tok = load_tokenizer("default")
    assert os.path.exists(os.path.join(tokenizer.default_path(), "tokenizer.json"))
    ids = tok("Hi")["input_ids"]
    assert ids[0] == tok.bos_token_id  # BOS prepended to plain text
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo."}],
                                   tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(chat["input_ids"], chat["assistant_masks"]) if m]
    assert tok.decode(marked) == "Yo.<|im_end|>"  # generation tags: answer + end of turn


def test_token_texts_make_whitespace_visible():
    tok = load_tokenizer("default")
    texts = token_texts(tok, tok("a b\nc")["input_ids"])
    assert texts[0] == "<|bos|>" and "".join(texts[1:]) == "a␣b↵c"
