"""Tokenizers: the bundled default (built offline from our own sample text) or any local/Hub tokenizer.

The default is a byte-level BPE (like GPT-2's) trained with the `tokenizers` library on the text of
assets/samples/, about 2,000 tokens, so tiny live-training models stay fast. It has BOS/EOS/pad tokens,
prepends BOS to plain text (like Llama tokenizers) and carries a ChatML chat template written by us
with `{% generation %}` tags, so TRL's assistant-only loss works with it. Training is deterministic; the
result is cached on disk (keyed by a hash of the corpus and settings) after the first build.
"""

import hashlib
import json
import os

from . import hub, one_line, quoted

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
DEFAULT_NAME = "default"
VOCAB_SIZE = 2048
BOS, EOS, PAD = "<|bos|>", "<|im_end|>", "<|pad|>"
IM_START = "<|im_start|>"

# ChatML, as Qwen and SmolLM use it. The assistant's answer and its <|im_end|> sit inside
# {% generation %} so `return_assistant_tokens_mask` (TRL's assistant_only_loss) marks exactly them:
# the model learns to answer and to stop, not to write role headers.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


class TokenizerError(ValueError):
    """A tokenizer could not be loaded; the message says why, in one line."""


CORPUS_SAMPLES = ("quiz_chat", "quiz_prompt_completion", "quiz_question_answer")  # what the vocabulary is built
# from: a later sample (quiz_text holds the same words) leaves it as it is, so token ids in docs and tests stay put


def _corpus():
    """Every string in the samples the tokenizer is built from, in a fixed order."""
    texts = []

    def walk(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for path in (os.path.join(ASSETS, "samples", f"{name}.jsonl") for name in CORPUS_SAMPLES):
        with open(path, encoding="utf-8") as f:
            for line in f:
                walk(json.loads(line))
    with open(os.path.join(ASSETS, "corpus.txt"), encoding="utf-8") as f:
        texts.extend(line.rstrip("\n") for line in f if line.strip())
    return texts


def cache_dir():
    return os.environ.get("SFTVIZ_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "sftviz"))


def build_default(path=None):
    """Train the default tokenizer and save it to `path` (a transformers tokenizer directory)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, IM_START],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # Plain text gets BOS in front (like Llama); chat text gets it from the template instead,
    # because apply_chat_template tokenizes with add_special_tokens=False.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                      special_tokens=[(BOS, tok.token_to_id(BOS))]),
    ])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=[IM_START], model_max_length=1024,
    )
    fast.chat_template = CHAT_TEMPLATE
    if path:
        fast.save_pretrained(path)
    return fast


def default_path():
    """Directory of the cached default tokenizer, built on first use."""
    key = hashlib.sha256(json.dumps([_corpus(), VOCAB_SIZE, CHAT_TEMPLATE, BOS, EOS, PAD]).encode()).hexdigest()[:12]
    path = os.path.join(cache_dir(), f"default-tokenizer-{key}")
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        tmp = f"{path}.tmp{os.getpid()}"
        build_default(tmp)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.replace(tmp, path)
        except OSError:  # another process won the race: theirs is identical
            pass
    return path


def load_tokenizer(name, where="any"):
    """`default`, `smollm2` (the offline model's, sftviz.model_loss), a local tokenizer directory, or a Hugging Face
    Hub id (never with trust_remote_code).

    where="hub" (the hosted page): `default` or a Hub id only, never a directory on the server."""
    from transformers import AutoTokenizer

    from .model_loss import SMOLLM2, converted

    name = (name or DEFAULT_NAME).strip()
    if name == SMOLLM2:  # the offline model's own tokenizer (a folder sftviz made, not one the visitor named)
        if not converted():  # (converted once by the model's loading, never here: this may be a bounded child)
            raise TokenizerError("the offline SmolLM2 is not ready yet: pick it under 'Real model' (or run python -m "
                                 "sftviz inspect DATA --model smollm2 once) and try again")
        try:
            return AutoTokenizer.from_pretrained(converted(), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - a broken cache: one line
            raise TokenizerError(one_line(e)[:200]) from None
    source = default_path() if name == DEFAULT_NAME else name
    if name != DEFAULT_NAME and where == "hub":
        hub.check_id(name, "tokenizer", TokenizerError)
    elif source.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise TokenizerError(f"no tokenizer directory {quoted(name)}")
    try:
        try:  # a local directory, or a Hub id already in the local cache
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=True)
        except Exception:
            if os.path.isdir(source):
                raise
            if not hub.reachable():
                raise TokenizerError(hub.unavailable("tokenizer", name)) from None
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except TokenizerError:
        raise
    except Exception as e:  # OSError, ValueError, HF errors: all mean "cannot load"
        if where == "hub" and name != DEFAULT_NAME:
            raise TokenizerError(hub.unavailable("tokenizer", name)) from None
        kind = "directory" if os.path.isdir(source) else "Hub id (offline or unknown?)"
        raise TokenizerError(f"cannot load tokenizer {quoted(name)} as a {kind}: {one_line(e)[:200]}") from None
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(f"tokenizer {quoted(name)} is not a fast (Rust) tokenizer; sftviz needs token offsets")
    if tok.eos_token is None:
        raise TokenizerError(f"tokenizer {quoted(name)} has no EOS token; TRL needs one")
    return tok


def _byte_decoder():
    """GPT-2's byte-level alphabet: printable stand-ins (Ġ = space, Ċ = newline) back to raw bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTES = _byte_decoder()
VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def token_texts(tok, ids):
    """Readable text of each token, whitespace made visible (␣ ↵ ⇥); special tokens as they are."""
    pieces = tok.convert_ids_to_tokens(ids)
    special = set(tok.all_special_tokens) | set(tok.get_added_vocab())
    byte_level = type(tok.backend_tokenizer.decoder).__name__ == "ByteLevel"
    out = []
    for piece in pieces:
        if piece is None:
            out.append("�")
        elif piece in special:
            out.append(piece)
        elif byte_level:
            raw = bytes(_BYTES.get(ch, 63) for ch in piece)
            # a piece of a multi-byte character (e.g. half of "’") shows as its bytes: \xe2\x80
            out.append(raw.decode("utf-8", errors="backslashreplace").translate(VISIBLE))
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):  # SentencePiece byte fallback
            out.append(chr(int(piece[3:5], 16)).translate(VISIBLE) if int(piece[3:5], 16) < 128 else piece)
        else:
            out.append(piece.replace("▁", " ").translate(VISIBLE))
    return out
