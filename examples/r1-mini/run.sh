#!/usr/bin/env bash
# r1-mini: the DeepSeek-R1 pipeline end to end, on a CPU, as r1 commands.
#
#   data → eval base → R1-Zero (GRPO) → eval → rollout → score → reject-sample → cold-start SFT
#   → eval → RL with the language-consistency reward → eval → report
#
#   examples/r1-mini/run.sh [--quick] [-o DIR] [-m MODEL] [--results DIR] [--redo STAGE]
#
#   --quick       the `tiny` random model and a handful of steps and questions (2–3 minutes):
#                 checks that every stage runs and hands the next one its input; learns nothing
#   -o DIR        output folder (default runs/r1-mini, with --quick runs/r1-mini-quick)
#   -m MODEL      the base model (default smollm2-135m, with --quick tiny)
#   --results DIR copy the report there with the command and the date (default in full mode:
#                 examples/r1-mini/results; none with --quick)
#   --redo STAGE  delete STAGE's output and every later stage's, then run them again
#
# Full mode: SmolLM2-135M, sized for ≤ 60 minutes on a quiet 2-core CPU (examples/r1-mini/README.md).
# Every stage is resumable: rerun the same command after an interruption and finished stages are
# skipped (DIR/.stages/NAME.done), a training run continues from its last checkpoint, a partial
# rollout or scoring file from its last complete record. A stage whose command changed since it
# ran is refused.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
quick=0 out="" model="" redo="" results=""
usage() { sed -n '7,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    -o|--output) out=${2:?-o needs a folder}; shift ;;
    -m|--model) model=${2:?-m needs a model}; shift ;;
    --redo) redo=${2:?--redo needs a stage}; shift ;;
    --results) results=${2:?--results needs a folder}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "Error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
command -v r1 >/dev/null || { echo "Error: r1 is not on PATH. Hint: . .venv/bin/activate" >&2; exit 1; }

if ((quick)); then
  default_out=runs/r1-mini-quick default_model=tiny
  n_train=32 n_test=8 difficulty=1
  eval_n=2 tokens=24                     # samples per question, tokens per completion (all stages)
  zero_steps=2 rl_steps=2 lr=2e-5 temp=0.9
  eval_every=1 eval_train_n=1            # held-out pass@1 during GRPO: every N steps, K samples
  rs_prompts=8 rs_n=2                    # rejection sampling: prompts × samples from R1-Zero
  sft_args=(--max-steps 2 --batch-size 4 --learning-rate 5e-5)
  # random weights are never right, so R1's rules keep nothing; the second policy keeps anything
  policies=("--max-per-prompt 1"
            "--no-correct-only --keep-truncated --max-mixed 1 --max-paragraph-words 0 --allow-code-blocks")
else
  default_out=runs/r1-mini default_model=smollm2-135m
  n_train=1024 n_test=50 difficulty=1
  eval_n=4 tokens=96
  zero_steps=60 rl_steps=30 lr=2e-5 temp=0.9   # ~25 s/step at 2 prompts × 4 × 96 tokens
  eval_every=10 eval_train_n=2           # held-out pass@1 during GRPO: every N steps, K samples
  rs_prompts=64 rs_n=4
  sft_args=(--epochs 2 --batch-size 4 --learning-rate 5e-5)
  # R1's rules (correct, not finished by the length limit, readable), ≤ 64 SFT examples; if no
  # sample is correct, the samples in the R1-Zero format (reward = accuracy + format ≥ 1) instead
  policies=("--max-per-prompt 1" "--max-per-prompt 1 --no-correct-only --min-reward 1")
  results=${results:-$here/results}
fi

cli_args=$( ((quick)) && printf ' --quick'; [[ -z $out ]] || printf ' -o %q' "$out"; [[ -z $model ]] || printf ' -m %q' "$model"
            [[ -z $results || $results == "$here/results" ]] || printf ' --results %q' "$results")
out=${out:-$default_out} model=${model:-$default_model}
state=$out/.stages
STAGES=(data eval-base zero eval-zero rollout score select sft eval-sft rl eval-rl report)
[[ -z $results ]] || STAGES+=(publish)
declare -A OUTPUTS=(
  [data]=data [eval-base]=eval/base [zero]=zero [eval-zero]=eval/zero [rollout]=select/rollouts.jsonl
  [score]=select/scored.jsonl [select]=select/selected.jsonl [sft]=sft [eval-sft]=eval/sft [rl]=rl
  [eval-rl]=eval/rl [report]=report [publish]=$results
)

log() { printf '[r1-mini %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'Error: %s\n' "$1" >&2; [[ -z ${2:-} ]] || printf 'Hint: %s\n' "$2" >&2; exit 1; }

later_than() {  # the stages after $1
  local name=$1 seen=0 s
  for s in "${STAGES[@]}"; do ((seen)) && printf '%s\n' "$s"; [[ $s == "$name" ]] && seen=1; done
  return 0
}

if [[ -n $redo ]]; then  # the stage and all later ones: markers and outputs (not the published results)
  [[ -n ${OUTPUTS[$redo]:-} ]] || die "--redo: no stage '$redo'" "choose from: ${STAGES[*]}"
  for s in "$redo" $(later_than "$redo"); do
    [[ $s == publish ]] || rm -rf "${out:?}/${OUTPUTS[$s]}" "$out/${OUTPUTS[$s]}.part"
    rm -f "$state/$s.done" "$state/$s.started"
  done
  log "redo: removed the outputs of $redo and the stages after it"
fi
mkdir -p "$state" "$out/data" "$out/eval" "$out/select"

stage() {  # stage NAME CMD…: run CMD unless NAME is done with the same CMD; time it
  local name=$1; shift
  local cmd; cmd=$(printf '%q ' "$@"); cmd=${cmd% }
  local done=$state/$name.done started=$state/$name.started
  local redo="to redo it and the later stages: examples/r1-mini/run.sh$cli_args --redo $name"
  if [[ -f $done ]]; then
    [[ $(head -n1 "$done") == "$cmd" ]] || die "stage $name ran as '$(head -n1 "$done")', now it would be '$cmd'" "$redo"
    log "$name: done already ($(sed -n 2p "$done"))"
    return 0
  fi
  [[ ! -f $started || $(head -n1 "$started") == "$cmd" ]] \
    || die "stage $name was started as '$(head -n1 "$started")', now it would be '$cmd'" "$redo"
  local s
  for s in $(later_than "$name"); do
    [[ ! -e $state/$s.done && ! -e $state/$s.started ]] \
      || die "stage $name must run again but the later stage $s has run from its old output" "$redo"
  done
  printf '%s\n' "$cmd" > "$started"
  log "$name: $cmd"
  local t0=$EPOCHREALTIME
  "$@"
  local took; took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }')
  printf '%s\n%s\n' "$cmd" "$took" > "$done.part" && mv "$done.part" "$done" && rm -f "$started"
  log "$name: done in $took"
}

make_data() {  # make_data N_TRAIN N_TEST DIFFICULTY N_SAMPLE
  # held-out test questions (seed 1); the train prompts (seed 0) without them; rejection sampling
  # draws from the last N_SAMPLE train prompts
  r1 data arithmetic -n "$2" --difficulty "$3" --seed 1 -q -o "$out/data/arithmetic-test.jsonl"
  r1 data arithmetic -n "$1" --difficulty "$3" --seed 0 -q \
    | python -c 'import json, sys
test = {json.loads(line)["prompt"] for line in open(sys.argv[1])}
for line in sys.stdin:
    if json.loads(line)["prompt"] not in test:
        sys.stdout.write(line)' "$out/data/arithmetic-test.jsonl" > "$out/data/train.jsonl.part"
  mv "$out/data/train.jsonl.part" "$out/data/train.jsonl"
  tail -n "$4" "$out/data/train.jsonl" > "$out/data/sample.jsonl"
  log "data: $(wc -l < "$out/data/train.jsonl") train prompts, $(wc -l < "$out/data/arithmetic-test.jsonl") test questions"
}

# The R1-Zero template with the answer prefilled with "<think>", everywhere: training, sampling, evals.
prompting=(--template r1-zero --prefill '<think>')
evaluate() {  # evaluate NAME MODEL SAMPLES TOKENS
  r1 eval -m "$2" --data "$out/data/arithmetic-test.jsonl" "${prompting[@]}" -n "$3" \
    --max-new-tokens "$4" --seed 0 -o "$out/eval/$1" -q > /dev/null
  python -c 'import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"][0]
print("eval %s: pass@1 %.3f, format %.3f, answered %.3f, %.0f tokens"
      % (sys.argv[2], b["pass@1"], b["format"], b["answered"], b["mean_tokens"]), file=sys.stderr)' \
    "$out/eval/$1/results.json" "$1"
}

grpo() {  # grpo NAME FROM STEPS TOKENS TEMPERATURE LR REWARD…: GRPO from FROM on the train prompts
  local name=$1 from=$2 steps=$3 tokens=$4 temp=$5 lr=$6; shift 6
  # TRL settings that are not flags (GRPOConfig fields; see examples/r1-zero-arithmetic.sh)
  cat > "$out/grpo.yaml" <<'EOF'
loss_type: grpo
scale_rewards: group
lr_scheduler_type: constant
gradient_checkpointing: false  # 135M parameters fit; recomputation only costs time on a CPU
save_steps: 10
save_total_limit: 1            # a SmolLM2 checkpoint with its Adam state is ~1.6 GB
EOF
  local rewards=() r
  for r in "$@"; do rewards+=(-r "$r"); done
  [[ " $* " == *" language "* ]] && rewards+=(--reward-arg language.language=en)
  r1 grpo -m "$from" --data "$out/data/train.jsonl" -c "$out/grpo.yaml" "${prompting[@]}" "${rewards[@]}" \
    --reward-arg format.strict=false \
    -n 4 --batch-size 8 --max-completion-length "$tokens" --temperature "$temp" --learning-rate "$lr" \
    --beta 0.001 --max-steps "$steps" --seed 0 -o "$out/$name" --resume -q \
    --eval-data "$out/data/arithmetic-test.jsonl" --eval-every "$eval_every" --eval-samples "$eval_train_n"
}

report() {  # curves of both GRPO runs, the table of the four evaluations
  mkdir -p "$out/report"
  r1 report "$out/zero" "$out/rl" "$out/eval/base" "$out/eval/zero" "$out/eval/sft" "$out/eval/rl" \
    -o "$out/report" -q > "$out/report/tables.md.part"
  mv "$out/report/tables.md.part" "$out/report/tables.md"
}

select_samples() {  # select_samples POLICY…: the first policy (reject-sample flags) that keeps any
  local policy
  for policy in "$@"; do
    # shellcheck disable=SC2086  # a policy is a list of flags
    r1 reject-sample "$out/select/scored.jsonl" $policy -o "$out/select/selected.jsonl"
    if [[ -s $out/select/selected.jsonl ]]; then
      printf '%s\n' "$policy" > "$out/select/policy.txt"
      log "select: $(wc -l < "$out/select/selected.jsonl") samples kept for SFT by 'r1 reject-sample $policy'"
      return 0
    fi
    log "select: no sample kept by 'r1 reject-sample $policy' (the drop counts are above)"
  done
  die "no sample survived rejection sampling" "sample more (rs_prompts, rs_n in $0) or train R1-Zero longer, then rerun with --redo rollout"
}

publish() {  # copy the report to --results DIR with the command and the date
  local dest=$results
  mkdir -p "$dest"
  cp "$out"/report/*.png "$dest"/
  {
    echo "# r1-mini results"
    echo
    echo "Command: \`examples/r1-mini/run.sh${cli_args}\`, finished $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "on $(nproc) CPU cores; r1cli $(python -c 'import r1cli; print(r1cli.__version__)'),"
    echo "$(python -c 'import torch, transformers, trl; print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")')."
    echo
    cat "$out/summary.md"
    echo
    echo "![training curves](training.png)"
    echo "![pass@1 before and after](eval_pass_1.png)"
  } > "$dest/README.md"
  log "publish: $dest/README.md and $(ls "$out"/report/*.png | wc -l) plots"
}

write_summary() {
  {
    echo "## Stages"
    echo
    echo "| stage | time | output |"
    echo "|---|---|---|"
    local s total=0 took
    for s in "${STAGES[@]}"; do
      [[ $s == publish || ! -f $state/$s.done ]] && continue
      took=$(sed -n 2p "$state/$s.done")
      total=$(awk -v a="$total" -v b="${took% s}" 'BEGIN { print a + b }')
      echo "| $s | $took | \`${OUTPUTS[$s]}\` |"
    done
    echo "| all | $(awk -v t="$total" 'BEGIN { printf "%.0f s (%.1f min)", t, t / 60 }') | |"
    echo
    echo "Base model \`$model\`; $(wc -l < "$out/data/train.jsonl") training prompts, $n_test held-out questions"
    echo "(\`r1 data arithmetic --difficulty $difficulty\`), $eval_n samples each at T=0.6, top-p 0.95, $tokens tokens;"
    echo "R1-Zero $zero_steps steps, rejection sampling $rs_prompts prompts × $rs_n samples"
    echo "($(wc -l < "$out/select/selected.jsonl") kept by \`r1 reject-sample $(cat "$out/select/policy.txt")\`),"
    echo "cold-start SFT of the base on them, RL $rl_steps steps from there."
    echo
    cat "$out/report/tables.md"
    echo
    echo "Plots: $(cd "$out/report" && ls *.png | sed 's/^/`/; s/$/`/' | paste -sd ' ')"
  } > "$out/summary.md"
}

log "output in $out, model $model$( ((quick)) && echo ', quick mode')"

stage data make_data "$n_train" "$n_test" "$difficulty" "$rs_prompts"
stage eval-base evaluate base "$model" "$eval_n" "$tokens"
# R1-Zero (§2.2): rule rewards only; `tags` gives partial credit so that a 135M model gets a signal
stage zero grpo zero "$model" "$zero_steps" "$tokens" "$temp" "$lr" accuracy format tags:0.5
stage eval-zero evaluate zero "$out/zero" "$eval_n" "$tokens"
# Rejection sampling from the R1-Zero checkpoint (§2.3.1's cold-start data, §2.3.3's filters)
stage rollout r1 rollout "$out/data/sample.jsonl" -m "$out/zero" "${prompting[@]}" -n "$rs_n" \
  --max-new-tokens "$tokens" --temperature 0.6 --seed 0 -o "$out/select/rollouts.jsonl" --resume -q
# reward = accuracy + format (as in training, text around the tags allowed); language recorded
stage score r1 score "$out/select/rollouts.jsonl" -r accuracy -r format -r language:0 --language en \
  --reward-arg format.strict=false -o "$out/select/scored.jsonl" --resume -q
stage select select_samples "${policies[@]}"
# Cold start (§2.3.1): SFT of the base model on those samples, as R1 fine-tunes V3-Base
stage sft r1 sft -m "$model" --data "$out/select/selected.jsonl" --max-length 256 \
  "${sft_args[@]}" --seed 0 -o "$out/sft" --resume -q
stage eval-sft evaluate sft "$out/sft" "$eval_n" "$tokens"
# Reasoning RL (§2.3.2): the same rewards + language consistency (the share of English words in the CoT)
stage rl grpo rl "$out/sft" "$rl_steps" "$tokens" "$temp" "$lr" accuracy format tags:0.5 language
stage eval-rl evaluate rl "$out/rl" "$eval_n" "$tokens"
stage report report
write_summary
[[ -z $results ]] || stage publish publish
cat "$out/summary.md"
