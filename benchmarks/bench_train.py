"""sftviz's training loop vs TRL's SFTTrainer on the same model, data, batch size and step count; the cost of
a fused pair against one run; the quick paired demo end to end, as the page runs it.

    python benchmarks/bench_train.py [--steps 60] [--no-demo]

Model: a small Llama (hidden 128, 2 layers) over the bundled tokenizer's full vocabulary, saved once
and loaded by every contender. Data: the bundled quiz sample, answer-only labels, max_length 128,
batch 8, AdamW lr 1e-3, 1 torch thread. Contenders, one after the other in this process:
  sftviz       sftviz.train.PairedTraining with one run
  TRL user     SFTConfig defaults + bf16=False (what a user must add on CPU); logging_steps=1 to see losses
  TRL tuned    + gradient_checkpointing=False and the model's own loss instead of TRL's fused loss
Printed: steady steps/s (after the first step), time from construction to the first loss, and ratios.
Then, on GSM8K with GPT-2's tokenizer (../shared): CPU time per step of one run, of the fused pair
(both runs advance in one step, stacked parameters) and of the pair plus the weighted run; and the
quick paired demo end to end through the page's path (a job in a worker process, sftviz.live).
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
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "assets")


def steady(times):
    """steps/s from the timestamps of consecutive losses, ignoring the first step."""
    return (len(times) - 1) / (times[-1] - times[0])


def run_sftviz(rows, tok, model_dir, steps):
    from sftviz import train

    t0 = time.perf_counter()
    cfg = train.TrainConfig.preset("quick", modes=("completion",), steps=steps, eval_every=20_000,
                                   model=model_dir, n_generate=0)  # one run: the same work as one TRL trainer
    pt = train.PairedTraining(rows, tok, cfg)
    times = []
    with pt:
        for ev in pt.events_until_done():
            if ev["record"] == "train":
                times.append(time.perf_counter())
    return times[0] - t0, steady(times)


def run_trl(rows, tok, model_dir, steps, tuned):
    import datasets
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    times = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                times.append(time.perf_counter())

    class OwnLoss(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    t0 = time.perf_counter()
    extra = dict(gradient_checkpointing=False) if tuned else {}
    args = SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), "bench_trl"), bf16=False, max_steps=steps,
                     per_device_train_batch_size=8, learning_rate=1e-3, max_length=128, logging_steps=1,
                     report_to="none", save_strategy="no", disable_tqdm=True, **extra)
    cls = OwnLoss if tuned else SFTTrainer
    trainer = cls(model=AutoModelForCausalLM.from_pretrained(model_dir), args=args,
                  train_dataset=datasets.Dataset.from_list(rows), processing_class=tok, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # no per-step log dicts on stdout
    trainer.train()
    return times[0] - t0, steady(times)


def gsm8k_gpt2():
    from sftviz import data
    from sftviz.tokenizer import load_tokenizer

    gsm = os.path.join(SHARED, "data", "gsm8k_test.jsonl")
    if not os.path.exists(gsm):
        return None, None
    return data.to_trl(data.load(gsm)), load_tokenizer(os.path.join(SHARED, "tokenizers", "gpt2"))


def pair_cost(rows, tok, steps=12):
    """CPU seconds per step (1 thread): one run, the fused pair, the pair + the weighted run."""
    import torch

    from sftviz import train

    torch.set_num_threads(1)
    cfg = train.TrainConfig.preset("quick", prompt_weight=0.1)
    pt = train.PairedTraining(rows, tok, cfg)  # its plan and batches (no thread started)
    out = {}
    for names in (["whole"], ["whole", "completion"], ["whole", "completion", "weighted"]):
        pt.names, pt.runs = names, train.Runs(train.build_model(pt.plan), names, "cpu", cfg.learning_rate)
        for step in range(2):
            pt.runs.step(*pt.batch(step))
        started = time.process_time()
        for step in range(2, 2 + steps):
            pt.runs.step(*pt.batch(step))
        out[len(names)] = (time.process_time() - started) / steps
    return out, len(pt.plan.vocab)


def paired_demo(rows, tok, preset="quick"):
    """A preset's paired runs as the page runs them: a training job in a worker process (all cores free). Returns
    (seconds to done, to the first training-loss point, to the first held-out point)."""
    from sftviz import jobs, live, train

    class Loaded:  # what live.train_updates reads of a page view
        pass

    loaded = Loaded()
    loaded.rows, loaded.tok, loaded.key, loaded.source = rows, tok, ("bench", "gpt2", "any"), "bench"  # a data_key
    vw = Loaded()
    vw.loaded = loaded
    t0 = time.perf_counter()
    first = held = None
    for update in live.train_updates(vw, train.TrainConfig.preset(preset), pool=jobs.Pool()):
        shown = [any(len(t.x) for t in fig.data) for fig in update.figures]  # held-out, training loss
        if held is None and shown[0]:
            held = time.perf_counter() - t0
        if first is None and shown[1]:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first, held


def class_demo():
    """The class preset (the lesson's) on GSM8K with GPT-2's tokenizer (the bundled quiz sample without
    ../shared/assets): the time to its first held-out point and to done, through the page's path."""
    rows, tok = gsm8k_gpt2()
    what = "GSM8K + GPT-2 tokenizer"
    if rows is None:
        from sftviz import data
        from sftviz.tokenizer import load_tokenizer
        rows, tok, what = data.load("quiz_prompt_completion"), load_tokenizer("default"), "the bundled quiz sample"
    wall, first, held = paired_demo(rows, tok, "class")
    print(f"class preset (whole + answer only, 80 steps each, held-out every 10) on {what}, through the page's path "
          f"({os.cpu_count()} cores free): first held-out point after {held:.1f} s (goal < 5 s), done after "
          f"{wall:.1f} s (goal < 20 s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--no-demo", action="store_true", help="skip the quick paired demo through the page's path")
    ap.add_argument("--class-only", action="store_true", help="only the class preset's times (the lesson's)")
    args = ap.parse_args()
    if args.class_only:
        return class_demo()

    import datasets
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from sftviz import data
    from sftviz.tokenizer import load_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    tok = load_tokenizer("default")
    rows = data.load("quiz_prompt_completion")
    model_dir = tempfile.mkdtemp()
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                 tie_word_embeddings=True)).save_pretrained(model_dir)

    results = {"sftviz": run_sftviz(rows, tok, model_dir, args.steps),
               "TRL as a user runs it": run_trl(rows, tok, model_dir, args.steps, tuned=False),
               "TRL tuned": run_trl(rows, tok, model_dir, args.steps, tuned=True)}
    print(f"{args.steps} steps, batch 8, max_length 128, vocab {len(tok)}, hidden 128 x 2 layers, 1 thread")
    print(f"{'':<24}{'steps/s':>9}{'first loss (s)':>16}")
    for name, (first, sps) in results.items():
        print(f"{name:<24}{sps:>9.1f}{first:>16.2f}")
    ours = results["sftviz"][1]
    print(f"sftviz / TRL as a user runs it: {ours / results['TRL as a user runs it'][1]:.2f}x (target >= 2x)")
    print(f"sftviz / TRL tuned:             {ours / results['TRL tuned'][1]:.2f}x (target >= 1x)")
    rows, tok = gsm8k_gpt2()
    if rows is None:
        print("GSM8K + GPT-2: skipped (../shared/assets absent)")
        return
    cost, vocab = pair_cost(rows, tok)
    print(f"GSM8K + GPT-2 tokenizer, quick preset (compact vocab {vocab}, max_length 128, batch 8), CPU per step, "
          f"1 thread: one run {1000 * cost[1]:.0f} ms; fused pair {1000 * cost[2]:.0f} ms ({cost[2] / cost[1]:.2f}x one "
          f"run, goal <= 1.3x); pair + weighted run {1000 * cost[3]:.0f} ms ({cost[3] / cost[1]:.2f}x)")
    if args.no_demo:
        return
    wall, first, _ = paired_demo(rows, tok)
    print(f"quick paired demo (whole + answer only, 240 steps each) through the page's path (a worker process, "
          f"{os.cpu_count()} cores free): {wall:.1f} s end to end (goal < 15 s), first curve point after {first:.1f} s")
    class_demo()


if __name__ == "__main__":
    main()
