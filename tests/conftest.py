import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SFTVIZ_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def shared_path(*parts):
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs ../shared ({path} is absent)", allow_module_level=True)  # (also at import)
    return path


_TOKENIZERS = {}


def get_tokenizer(name):
    """default | gpt2 | phi3 | llamastyle | chatml | chatml_plain (the last three built from shared/oracle)."""
    if name not in _TOKENIZERS:
        from sftviz.tokenizer import load_tokenizer
        if name == "default":
            tok = load_tokenizer("default")
        elif name in ("gpt2", "phi3"):
            tok = load_tokenizer(shared_path("assets", "tokenizers", {"gpt2": "gpt2", "phi3": "phi-3-mini"}[name]))
        else:
            import subprocess
            import tempfile
            out = os.path.join(tempfile.gettempdir(), "sftviz_test_tokenizers")
            script = shared_path("oracle", "make_tokenizers.py")
            if not os.path.exists(os.path.join(out, "chatml", "tokenizer.json")):
                subprocess.run([sys.executable, script, out], check=True, capture_output=True)
            tok = load_tokenizer(os.path.join(out, "chatml" if name == "chatml_plain" else name))
            if name == "chatml_plain":
                with open(shared_path("oracle", "samples", "templates", "chatml_plain.jinja")) as f:
                    tok.chat_template = f.read()
        _TOKENIZERS[name] = tok
    return _TOKENIZERS[name]


@pytest.fixture
def tokenizer():
    return get_tokenizer


def page_form(**fields):
    """The page's form as app.py's handlers receive it (elem_id -> value), the defaults overridden by fields."""
    from sftviz.page import DEFAULT_FORM
    return {**DEFAULT_FORM, **fields}


@pytest.fixture
def hosted_app(monkeypatch, tmp_path):
    """The page's handlers (sftviz.page) as hosted (no server paths), with uploads in a temporary folder."""
    from sftviz import page, uploads
    monkeypatch.setattr(page, "LOCAL_PATHS", False)
    monkeypatch.setattr(uploads, "ROOT", str(tmp_path / "uploads"))
    return page


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def server():
    from app import start, warm_up
    warm_up()  # as app.py's serve() does: torch is imported before any child is forked
    demo = start("127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="session")
def browser():
    import shutil
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    external = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.on("request", lambda r: external.append(r.url) if not r.url.startswith(
        (server.rstrip("/"), "data:", "blob:", "http://127.0.0.1", "http://localhost")) else None)
    pg.external_requests = external
    yield pg
    context.close()


def as_visitor(session, fn, *args, **kwargs):
    """fn(*args, **kwargs) as the page's visitor `session` (bounded.OWNER), as a page's handler runs."""
    from sftviz import bounded
    token = bounded.OWNER.set(session)
    try:
        return fn(*args, **kwargs)
    finally:
        bounded.OWNER.reset(token)


def run_in_venv(venv, script, which, cases):
    """Run tests/<script> with the python of `venv` (one of the other trainers' venvs scripts/test.sh makes) on
    `cases`; its results, one per case. Missing venv: a failure under scripts/test.sh, else a skip."""
    import json
    import subprocess
    import tempfile

    python = os.path.join(ROOT, venv, "bin", "python")
    if not os.path.exists(python):
        if os.environ.get("SFTVIZ_ORACLE_VENVS"):
            pytest.fail(f"{venv} is missing: scripts/test.sh makes it")
        pytest.skip(f"{venv} is missing: run scripts/test.sh (it makes the oracle venvs)")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "cases.json"), os.path.join(tmp, "results.json")
        with open(src, "w", encoding="utf-8") as f:
            json.dump(cases, f)
        done = subprocess.run([python, os.path.join(ROOT, "tests", script), which, src, out], capture_output=True,
                              text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
        assert done.returncode == 0, done.stderr[-3000:]
        with open(out, encoding="utf-8") as f:
            return json.load(f)
