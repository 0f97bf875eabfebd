#!/usr/bin/env bash
# R1-Zero on a CPU: GRPO on the packaged SmolLM2-135M with the R1-Zero template and rule-based
# rewards only (accuracy + format), on `r1 data arithmetic` problems. Sized for a 2-core CPU
# (~20 s/step, 2 prompts × 4 generations per step): STEPS=120 takes about 40 minutes. The format
# reward should rise first; the model is too weak for accuracy to move much in that time.
#
#   examples/r1-zero-arithmetic.sh [OUT_DIR]          (STEPS=…, LR=…, TOKENS=… override)
#
# Then: first and last 5 steps of the mean rewards in metrics.jsonl (printed at the end).
set -euo pipefail
out=${1:-runs/r1-zero-arithmetic}
steps=${STEPS:-120}
lr=${LR:-1e-5}
tokens=${TOKENS:-96}
mkdir -p "$out"

# Settings that are not flags live in a recipe (TRL GRPOConfig fields; r1's own under `r1:`).
cat > "$out/recipe.yaml" <<'EOF'
loss_type: grpo
beta: 0.001                  # R1: reference model + k3 KL
scale_rewards: group
lr_scheduler_type: constant
gradient_checkpointing: false  # 135M parameters fit easily; recomputation only costs time on a CPU
save_steps: 20
r1:
  template: r1-zero
  reward: [accuracy, format]
  reward_params:
    format: {strict: false}  # text around the tags is allowed: a first signal for a small model
EOF

[ -s "$out/prompts.jsonl" ] || r1 data arithmetic -n 1024 --difficulty 1 --seed 0 -o "$out/prompts.jsonl"

resume=()
[ -d "$out/run" ] && resume=(--resume)
r1 grpo -m smollm2-135m --data "$out/prompts.jsonl" -c "$out/recipe.yaml" \
  -n 4 --batch-size 8 --max-completion-length "$tokens" --temperature 1.0 \
  --learning-rate "$lr" --max-steps "$steps" --seed 0 -o "$out/run" "${resume[@]}"

python - "$out/run/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def mean(part, key):
    values = [r[key] for r in part if r.get(key) is not None]
    return sum(values) / len(values) if values else float("nan")
for name, part in (("first 5", rows[:5]), ("last 5", rows[-5:])):
    print(f"{name} steps: reward {mean(part, 'reward'):.3f}, format {mean(part, 'reward/format'):.3f}, "
          f"accuracy {mean(part, 'accuracy'):.3f}, length {mean(part, 'completion_length'):.0f}", file=sys.stderr)
EOF
