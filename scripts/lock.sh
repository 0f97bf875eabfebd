#!/usr/bin/env bash
# Write requirements.lock: the exact version of every package in a virtual environment where the
# whole test suite passed. `scripts/install.sh` installs from it by default.
#
#   scripts/lock.sh                 from .venv, into requirements.lock
#   VENV=/tmp/v scripts/lock.sh OUT from another environment, into another file
#
# torch is written without its local build tag (+cpu, +cu130): the lock pins the version and
# install.sh picks the build (CPU wheel, or PyPI's CUDA one), so one lock serves both. Packages
# only a GPU build pulls (nvidia-*, triton) are not in a CPU environment and stay unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
out=${1:-requirements.lock}
python=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tmp=$(mktemp)
{
  echo "# The locked stack: exact versions of every package the test suite passed with."
  echo "# Written by scripts/lock.sh from a Python $python environment; install.sh uses it as pip"
  echo "# constraints (R1_UNLOCKED=1 skips it). Bump it with 'make upgrade-check', in one reviewed commit."
  "$VENV/bin/python" -m pip freeze --exclude-editable --all |
    grep -viE '^(pip|setuptools|wheel|r1cli)==' |
    sed -E 's/^(torch==[^+]+)\+.*/\1/' |
    LC_ALL=C sort -f
} > "$tmp"
mv "$tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)"
