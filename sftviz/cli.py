"""`python -m sftviz inspect|train ...`: the label engine and the paired training runs from a terminal."""

import argparse
import json
import os
import sys

from . import TRL_VERSION

STYLE = {"context": "\033[2m", "target": "\033[1;4;32m", "masked": "\033[9;90m"}
ALT = {"context": "\033[2;36m", "target": "\033[1;4;33m", "masked": "\033[9;90m"}  # every other token
PLAIN = {"context": ("", ""), "target": ("[", "]"), "masked": ("~", "~")}  # told apart without color
RESET = "\033[0m"


def add_data_args(p):
    p.add_argument("data", help="bundled sample name, local file (.jsonl .json .csv .parquet) or Hub dataset id")
    p.add_argument("--tokenizer", default="default", help="'default' (bundled), a local directory or a Hub id")
    p.add_argument("--config", default=None, help="Hub dataset config")
    p.add_argument("--split", default="train", help="Hub dataset split")
    p.add_argument("--limit", type=int, default=None, help="first N examples only")
    p.add_argument("--text-field", default="text", help="SFTConfig.dataset_text_field")
    p.add_argument("--prompt-template", default=None, help="Jinja template mapping a row to the prompt")
    p.add_argument("--completion-template", default=None, help="Jinja template mapping a row to the completion")
    p.add_argument("--max-length", default="1024", help="SFTConfig.max_length, or 'none'")


def parse_max_length(value):
    if str(value).lower() in ("none", "null"):
        return None
    n = int(value)
    if n < 1:
        raise ValueError(f"--max-length must be a positive number or 'none', not {value}")
    return n


def load(args):
    """The shared front half: rows in TRL's format, the detected shape, and the tokenizer."""
    from .data import DEFAULT_MAPPINGS, Mapping, detect, load, to_trl
    from .tokenizer import load_tokenizer

    rows = load(args.data, args.config, args.split, args.limit)
    kind = detect(rows, args.text_field)
    mapping = None
    if args.prompt_template or args.completion_template:
        base = DEFAULT_MAPPINGS.get(kind, Mapping("{{ prompt }}", "{{ completion }}"))
        mapping = Mapping(args.prompt_template or base.prompt, args.completion_template or base.completion)
        kind = kind if kind in DEFAULT_MAPPINGS else "prompt_answer"
    rows = to_trl(rows, kind, mapping, args.text_field)
    return rows, kind, load_tokenizer(args.tokenizer)


def inspect(args):
    from .labels import Options, prepare
    from .tokenizer import token_texts

    rows, kind, tok = load(args)
    opts = Options(args.mode, parse_max_length(args.max_length), args.packing, args.packing_strategy, args.text_field)
    prepared = prepare(rows, tok, opts)
    for w in prepared.warnings:
        print(f"sftviz: TRL warns: {w}", file=sys.stderr)
    color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    if not args.json:
        print(f"{args.data}: {kind}, {len(rows)} examples; tokenizer {args.tokenizer}; mode {args.mode} "
              f"(completion_only_loss={prepared.completion_only_loss}, "
              f"assistant_only_loss={prepared.assistant_only_loss}); as TRL {TRL_VERSION} prepares it")
        print(legend(color))
    for i, seq in enumerate(prepared.sequences):
        texts = token_texts(tok, seq.input_ids)
        if args.json:
            rec = {"index": i, "source": seq.sources[0] if seq.sources else None, "input_ids": seq.input_ids,
                   "labels": seq.labels}
            if seq.attention_mask is not None:
                rec["attention_mask"] = seq.attention_mask
            if seq.position_ids is not None:
                rec["position_ids"] = seq.position_ids
            rec.update(roles=seq.roles, tokens=texts, next_token_targets=seq.next_targets,
                       segments=seq.sources, num_loss_tokens=seq.num_scored)
            if seq.dropped:
                rec["dropped"] = True
            print(json.dumps(rec, ensure_ascii=False))
        else:
            print(render_sequence(i, seq, texts, color, opts.packing))


def legend(color):
    parts = []
    for role, words in (("target", "target: trained (has a label)"), ("context", "context: input only, label -100"),
                        ("masked", "masked: padding, not attended")):
        parts.append(f"{STYLE[role]}{words}{RESET}" if color else f"{PLAIN[role][0]}{words}{PLAIN[role][1]}")
    return "legend: " + "   ".join(parts)


def render_sequence(i, seq, texts, color, packed):
    roles = seq.roles
    counts = {r: roles.count(r) for r in ("target", "context", "masked")}
    docs = sorted(set(seq.sources))
    head = f"── {'row' if packed else 'example'} {i}"
    head += f" (documents {', '.join(map(str, docs))})" if packed else ""
    head += (f": {len(roles)} tokens, {counts['target']} target, {counts['context']} context, "
             f"{counts['masked']} masked; {seq.num_scored} scored after the shift")
    if seq.dropped:
        head += "  ✗ DROPPED by TRL: no label left after truncation"
    out, prev_src = [], None
    for t, (text, role, src) in enumerate(zip(texts, roles, seq.sources)):
        if packed and prev_src is not None and src != prev_src:
            out.append(" ║ ")  # document boundary
        prev_src = src
        if color:
            out.append(f"{(STYLE if t % 2 == 0 else ALT)[role]}{text}{RESET}")
        else:
            a, b = PLAIN[role]
            out.append(f"{a}{text}{b}" if role != "context" else text)
    return head + "\n" + "".join(out).replace("↵", "↵\n")


def main(argv=None):
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="python -m sftviz", description="See what SFT trains on, as TRL does.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="show every token's role (context / target / masked)")
    add_data_args(p)
    p.add_argument("--mode", choices=["auto", "whole", "completion", "assistant"], default="auto")
    p.add_argument("--packing", action="store_true")
    p.add_argument("--packing-strategy", choices=["bfd", "bfd_split", "wrapped"], default="bfd")
    p.add_argument("--json", action="store_true", help="one JSON object per sequence, in TRL's order")
    p.add_argument("--no-color", action="store_true")
    p.set_defaults(func=inspect)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # bad input: one line, no traceback
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"sftviz: error: {msg}", file=sys.stderr)
        return 2
    return 0
