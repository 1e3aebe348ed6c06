"""The code runs on Python 3.10, the oldest Python a ZeroGPU Space offers (3.10.13 or 3.12.12), although the
machines here have 3.11 only: vermin reads every file for syntax and standard-library calls newer than 3.10."""

import os
import subprocess
import sys

from conftest import ROOT

VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")
FOLDERS = ("app.py", "sftviz", "tests", "benchmarks", "scripts", "assets")


def vermin(*paths):
    out = subprocess.run([VERMIN, "-t=3.10-", "--no-tips", "--violations", "--eval-annotations", *paths],
                         capture_output=True, text=True, cwd=ROOT)
    return out.returncode, out.stdout + out.stderr


def test_no_file_needs_python_3_11_or_later():
    code, out = vermin(*FOLDERS)
    assert code == 0 and "Target versions not met" not in out, out


def test_the_check_catches_3_11_syntax_and_calls(tmp_path):
    (tmp_path / "new.py").write_text("import tomllib\nimport datetime\nfrom typing import Self\n"
                                     "x = datetime.UTC\ntry:\n    pass\nexcept* ValueError:\n    pass\n")
    code, out = vermin(str(tmp_path / "new.py"))
    assert code != 0
    for needs_311 in ("tomllib", "datetime.UTC", "typing.Self", "except*"):
        assert needs_311 in out, out
