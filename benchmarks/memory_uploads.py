"""The server's memory while many visitors view big uploads of their own.

    python benchmarks/memory_uploads.py [--sessions 12] [--mb 49] [--cache-mb 1024]

Starts `python app.py` on 127.0.0.1 with SFTVIZ_CACHE_MB=--cache-mb, writes --sessions distinct JSON-lines
files of about --mb MB each (rows of ~10 KB: a short prompt and completion, and a `notes` column of ~9 KB that
TRL ignores, as datasets with metadata have; its first 5,000 rows are what the page loads and labels), and has one
gradio_client session per file
upload it and load it (as the page does: the upload, then the load of the default view), one after another
and then all again. Prints the server's memory (PSS of its process and work children, sampled every 0.2 s):
idle, after each session, and the peak; and what the caches said they held.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_classroom import VIEW, free_port, memory_mb, start_server  # noqa: E402


def big_file(folder, k, mb):
    path = os.path.join(folder, f"upload_{k}.jsonl")
    row = 0
    with open(path, "w") as f:
        while f.tell() < mb * 2**20:
            words = " ".join(f"w{(row * 7 + j) % 997}" for j in range(60))
            notes = " ".join(f"n{(row * 13 + j) % 991}" for j in range(1800))
            f.write(f'{{"prompt": "Session {k} question {row}: {words}?", "completion": " {words}.", '
                    f'"notes": "{notes}"}}\n')
            row += 1
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=12)
    ap.add_argument("--mb", type=float, default=49)
    ap.add_argument("--cache-mb", type=int, default=1024)
    args = ap.parse_args()
    os.environ["SFTVIZ_CACHE_MB"] = str(args.cache_mb)
    from gradio_client import Client, handle_file

    folder = tempfile.mkdtemp(prefix="sftviz-bench-")
    files = [big_file(folder, k, args.mb) for k in range(args.sessions)]
    server, url = start_server(free_port())
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(memory_mb(server.pid))
            time.sleep(0.2)

    try:
        time.sleep(5)
        idle = memory_mb(server.pid)
        threading.Thread(target=sample, daemon=True).start()
        clients = [Client(url, verbose=False) for _ in files]
        for rounds in range(2):
            for k, (client, path) in enumerate(zip(clients, files)):
                t = time.perf_counter()
                if rounds == 0:
                    client.predict(handle_file(path), api_name="/upload")
                out = client.predict(mode="whole", **VIEW, api_name="/refresh")
                status = str(out[0])
                ok = "sv-error" not in status
                print(f"round {rounds + 1} session {k + 1}: {'loaded' if ok else status[:160]} in "
                      f"{time.perf_counter() - t:.1f} s; server now {memory_mb(server.pid):.0f} MB, "
                      f"peak so far {max(samples):.0f} MB", flush=True)
        stop.set()
    finally:
        server.kill()
        server.wait()
    print(f"{args.sessions} sessions, each with its own {args.mb:g} MB upload, SFTVIZ_CACHE_MB={args.cache_mb}: "
          f"server memory (PSS, process + work children) idle {idle:.0f} MB, peak {max(samples):.0f} MB, "
          f"last {samples[-1]:.0f} MB")


if __name__ == "__main__":
    main()
