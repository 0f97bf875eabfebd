#!/usr/bin/env bash
# Sample 4 completions for each of 8 arithmetic problems with the packaged SmolLM2-135M,
# under the R1-Zero template, and keep the output resumable.
#
#   examples/rollout-arithmetic.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/rollout-arithmetic}
mkdir -p "$out"
r1 data arithmetic -n 8 --difficulty 2 --seed 0 -o "$out/prompts.jsonl"
r1 rollout "$out/prompts.jsonl" -m smollm2-135m -n 4 --template r1-zero --max-new-tokens 128 \
  --seed 0 -o "$out/rollouts.jsonl" --resume
echo "wrote $(wc -l < "$out/rollouts.jsonl") rollout records to $out/rollouts.jsonl" >&2
