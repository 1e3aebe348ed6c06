"""The code's shape, as a contributor meets it: short functions, app.py only lays out and wires, and one place
decides what kind of row a row is."""

import ast
import glob
import os
import subprocess
import sys

from conftest import ROOT

CODE = [os.path.join(ROOT, "app.py")] + sorted(glob.glob(os.path.join(ROOT, "sftviz", "*.py")))


def functions(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_is_longer_than_80_lines():
    long = [(os.path.relpath(path, ROOT), f.name, f.end_lineno - f.lineno + 1)
            for path in CODE for f in functions(path) if f.end_lineno - f.lineno + 1 > 80]
    assert long == []


def test_importing_app_builds_the_page_and_loads_nothing():
    """No labelling and no torch at import: that is serve()'s warm-up (a test, a Space's reload or a script
    that imports the page pays for neither)."""
    code = ("import sys, threading, app\n"
            "from sftviz import view\n"
            "print('torch' in sys.modules, len(view._loads.data), len(view._preps.data), threading.active_count())")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    torch, loads, preps, threads = out.stdout.split()[-4:]
    assert (torch, loads, preps) == ("False", "0", "0"), out.stderr[-2000:]
    assert "def warm_up" in open(os.path.join(ROOT, "app.py")).read()  # ... it happens in serve()


def test_one_function_decides_a_rows_type():
    """labels.row_type; only TRL's own first-row tests (assistant_only_loss, add_eos) call is_conversational, and
    markers.py, where other trainers' code makes the same test its own way."""
    callers = {}
    for path in CODE:
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) \
                    == "is_conversational":
                callers.setdefault(os.path.relpath(path, ROOT), 0)
                callers[os.path.relpath(path, ROOT)] += 1
    assert set(callers) == {os.path.join("sftviz", "labels.py"), os.path.join("sftviz", "markers.py")}, callers


def test_the_trainer_is_split_by_concern_and_presentation_does_not_import_it():
    """sftviz.plan (no torch), sftviz.engine (torch), sftviz.train (running them); render and plots read run
    titles from the plan, beside the tables they describe."""
    def imports(name):
        tree = ast.parse(open(os.path.join(ROOT, "sftviz", name), encoding="utf-8").read())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
            {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    for name in ("render.py", "plots.py"):
        assert not imports(name) & {"train", "engine", "torch"}, name
    assert "torch" not in imports("plan.py") and "engine" not in imports("plan.py")
