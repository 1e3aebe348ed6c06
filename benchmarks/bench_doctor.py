"""The doctor over a whole dataset at scale, beside TRL's own dataset preparation.

    python benchmarks/bench_doctor.py [--rows 1000000] [--sizes 100000,1000000] [--trl-rows 20000]

Data: GSM8K from ../shared/assets (mapped to prompt/completion), repeated to --rows, written once as JSON
lines; GPT-2's tokenizer; answer only, max_length 1024. sftviz: `python -m sftviz doctor FILE --limit N` in
its own process (streamed in chunks of 10,000 rows, one worker per core); its wall time, and the peak memory
of its whole process tree (PSS, so pages shared by the workers count once), sampled every 0.2 s. TRL:
`SFTTrainer._prepare_dataset` (EOS, tokenization, labels, truncation, filter) on a --trl-rows slice, with
one process and with dataset_num_proc = the cores, in this process; its rows/s is what scales to N rows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "assets")


def tree_pss_mb(pid):
    """PSS of a process and all its descendants, in MB."""
    children, total = {}, 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                pass
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024
        except (OSError, StopIteration):
            pass
    return total


def run_doctor(path, n, tokenizer):
    cmd = [sys.executable, "-m", "sftviz", "doctor", path, "--tokenizer", tokenizer, "--mode", "completion",
           "--max-length", "1024", "--limit", str(n), "--json"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_pss_mb(proc.pid))
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"doctor failed: {err.strip()}")
    report = json.loads(out)
    assert report["examples"] == n, report["examples"]
    return wall, peak, report


def trl_rows_per_second(rows, tok, num_proc):
    import datasets
    import transformers
    from trl import SFTConfig, SFTTrainer

    from trl_reference import tiny_model

    datasets.disable_progress_bars()
    datasets.disable_caching()
    transformers.logging.set_verbosity_error()
    cfg = SFTConfig(output_dir=os.path.join(tempfile.gettempdir(), "bench"), report_to="none", use_cpu=True,
                    bf16=False, max_length=1024, dataset_num_proc=num_proc)
    trainer = SFTTrainer(model=tiny_model(tok), args=cfg, train_dataset=datasets.Dataset.from_list(rows[:8]),
                         processing_class=tok)
    dataset = datasets.Dataset.from_list(rows)
    started = time.perf_counter()
    trainer._prepare_dataset(dataset, trainer.processing_class, cfg, False, None, "train")
    return len(rows) / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--trl-rows", type=int, default=20_000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from sftviz import data
    from sftviz.tokenizer import load_tokenizer

    gpt2 = os.path.join(SHARED, "tokenizers", "gpt2")
    rows = data.to_trl(data.load(os.path.join(SHARED, "data", "gsm8k_test.jsonl")))
    path = os.path.join(tempfile.gettempdir(), f"sftviz_bench_doctor_{args.rows}.jsonl")
    if not os.path.exists(path):
        with open(path + ".tmp", "w") as f:
            lines = [json.dumps(r) + "\n" for r in rows]
            for k in range(args.rows):
                f.write(lines[k % len(lines)])
        os.replace(path + ".tmp", path)
    print(f"GSM8K prompt/completion repeated to {args.rows:,} rows ({os.path.getsize(path) / 2**20:,.0f} MB), "
          f"GPT-2 tokenizer, answer only, max_length 1024, {os.cpu_count()} cores")

    tok = load_tokenizer(gpt2)
    slice_ = (rows * (args.trl_rows // len(rows) + 1))[:args.trl_rows]
    trl = {p: trl_rows_per_second(slice_, tok, p) for p in (None, os.cpu_count())}
    print(f"TRL _prepare_dataset on {args.trl_rows:,} rows: {trl[None]:,.0f} rows/s (1 process), "
          f"{trl[os.cpu_count()]:,.0f} rows/s (dataset_num_proc={os.cpu_count()})")
    print(f"{'rows':>10} {'doctor s':>9} {'rows/s':>8} {'peak PSS MB':>12} {'vs TRL 1 proc':>14} "
          f"{'vs TRL num_proc':>16} {'findings':>9}")
    for n in sizes:
        wall, peak, report = run_doctor(path, n, gpt2)
        rate = n / wall
        checks = ",".join(f["check"] for f in report["findings"])
        print(f"{n:>10,} {wall:>9.1f} {rate:>8,.0f} {peak:>12,.0f} {rate / trl[None]:>13.1f}x "
              f"{rate / trl[os.cpu_count()]:>15.1f}x  {checks}")


if __name__ == "__main__":
    main()
