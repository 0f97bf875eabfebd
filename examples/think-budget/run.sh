#!/usr/bin/env bash
# Test-time scaling of SmolLM2-135M-Instruct on 50 arithmetic questions: budget forcing at
# 16, 32, 64 and 128 think tokens, evaluated in one sweep (the smaller budgets fork from the
# largest one's prefix), then the curve. Runs on a CPU; see README.md here for the timing.
set -euo pipefail
cd "$(dirname "$0")"
r1 data arithmetic -n 50 --seed 0 > questions.jsonl
r1 eval -m smollm2-135m --data questions.jsonl --template r1-zero --prefill "<think>" \
  -n 2 --max-new-tokens 176 --stop "</answer>" --think-budget 16,32,64,128 --seed 0 -o eval > metrics.jsonl
r1 report eval -o plots > table.md
