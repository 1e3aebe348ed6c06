"""Label engine vs TRL's own dataset preparation, side by side on the same real examples.

    python benchmarks/bench_labels.py [--n 1000] [--repeat 3] [--rules trl|trl-0.19|unsloth]

GSM8K (question/answer mapped to prompt/completion) with the GPT-2 tokenizer from ../shared/assets.
TRL: `SFTTrainer._prepare_dataset` (EOS, tokenization, labels, truncation, filter), the step sftviz
mirrors. sftviz: `labels.prepare` on the same rows and options. Best of --repeat runs each, and the
time at n/4, n/2, n to check that it grows linearly.

--rules trl-0.19 / unsloth: the other trainers' rules (sftviz.markers) against their real code, run in the
venvs scripts/test.sh makes (.venv-trl019, .venv-unsloth) by tests/other_trainers_reference.py, on the first
n Alpaca rows (GPTeacher) written as "### Instruction:/### Response:" text, GPT-2 tokenizer. The library's time
is its whole pass (trainer with its dataset preparation, then the collator or train_on_responses_only on every
row) minus the same pass on 8 rows (building the trainer and importing are not labelling).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "assets")


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules", default="trl", choices=["trl", "trl-0.19", "unsloth"])
    args = ap.parse_args()
    if args.rules != "trl":
        return other_trainer(args)

    import datasets
    import transformers
    from trl import SFTConfig, SFTTrainer

    from sftviz import data
    from sftviz.labels import Options, prepare
    from sftviz.tokenizer import load_tokenizer
    from trl_reference import tiny_model

    datasets.disable_progress_bars()
    datasets.disable_caching()
    transformers.logging.set_verbosity_error()
    tok = load_tokenizer(os.path.join(SHARED, "tokenizers", "gpt2"))
    rows = data.to_trl(data.load(os.path.join(SHARED, "data", "gsm8k_test.jsonl")))
    while len(rows) < args.n:
        rows = rows + rows
    rows = rows[:args.n]

    cfg = SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), "bench"), report_to="none", use_cpu=True,
                    bf16=False, max_length=1024)
    trainer = SFTTrainer(model=tiny_model(tok), args=cfg, train_dataset=datasets.Dataset.from_list(rows[:8]),
                         processing_class=tok)

    sets = {}  # the Dataset a TRL user passes in, built outside the timing (ours gets the list of rows)

    def trl(n):
        if n not in sets:
            sets[n] = datasets.Dataset.from_list(rows[:n])
        return trainer._prepare_dataset(sets[n], trainer.processing_class, cfg, False, None, "train")

    def ours(n):
        return prepare(rows[:n], tok, Options("auto", 1024))

    assert [s.labels for s in ours(50).sequences] == trl(50)["labels"]  # same output before timing
    print(f"GSM8K prompt/completion, GPT-2 tokenizer, max_length 1024, best of {args.repeat}")
    print(f"{'examples':>8} {'TRL s':>8} {'sftviz s':>9} {'TRL ex/s':>9} {'sftviz ex/s':>12} {'ratio':>6}")
    for n in (args.n // 4, args.n // 2, args.n):
        t_trl, t_ours = best(lambda: trl(n), args.repeat), best(lambda: ours(n), args.repeat)
        print(f"{n:>8} {t_trl:>8.3f} {t_ours:>9.3f} {n / t_trl:>9.0f} {n / t_ours:>12.0f} {t_trl / t_ours:>5.1f}x")


def other_trainer(args):
    import json
    import subprocess

    from sftviz.labels import Options, prepare
    from sftviz.tokenizer import load_tokenizer
    from test_other_trainers import VENVS, rows_of

    python = os.path.join(ROOT, VENVS[args.rules], "bin", "python")
    tok_path = os.path.join(SHARED, "tokenizers", "gpt2")
    tok = load_tokenizer(tok_path)
    rows = rows_of("alpaca", args.n)
    markers = {"instruction": "### Instruction:\n", "response": "### Response:\n"}
    sizes = [8, args.n // 4, args.n // 2, args.n]
    cases = [{"rows": rows[:n], "tokenizer": tok_path, "max_length": 1024, **markers} for n in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "cases.json"), os.path.join(tmp, "out.json")
        with open(src, "w") as f:
            json.dump(cases * args.repeat, f)
        subprocess.run([python, os.path.join(ROOT, "tests", "other_trainers_reference.py"), args.rules, src, out],
                       check=True, env={**os.environ, "PYTHONPATH": ""})
        with open(out) as f:
            results = json.load(f)
    theirs = [min(results[k * len(sizes) + i]["seconds"] for k in range(args.repeat)) for i in range(len(sizes))]
    options = Options(max_length=1024, rules=args.rules, **markers)
    got = prepare(rows, tok, options).sequences
    assert [s.labels for s in got if not s.dropped] == [r["labels"] for r in results[len(sizes) - 1]["records"]]
    print(f"Alpaca text, GPT-2 tokenizer, max_length 1024, rules {args.rules}, best of {args.repeat}")
    print(f"{'examples':>8} {'real s':>8} {'sftviz s':>9} {'real ex/s':>10} {'sftviz ex/s':>12} {'ratio':>6}")
    for n, t in zip(sizes[1:], theirs[1:]):
        t_real = t - theirs[0]
        t_ours = best(lambda: prepare(rows[:n], tok, options), args.repeat)
        print(f"{n:>8} {t_real:>8.3f} {t_ours:>9.3f} {n / t_real:>10.0f} {n / t_ours:>12.0f} {t_real / t_ours:>5.1f}x")


if __name__ == "__main__":
    main()
