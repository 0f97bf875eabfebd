"""GRPO step time and peak memory: `r1 grpo` against TRL's GRPOTrainer driven directly, same run.

    python benchmarks/grpo.py [--model smollm2-135m] [--steps 4] [--sizes 2x4x64,2x8x128] [--generation r1]

Both sides train the same model on the same arithmetic prompts (chat template) with the same
rewards (r1's accuracy + format through the TRL adapter), GRPOConfig settings, seed and final
save; r1 adds its data checks, metrics.jsonl, r1_config.json and callbacks, and generates with
its own engine (`--generation r1`, the default; `--generation trl` measures r1's overhead over
TRL's own generation) and computes each group's prompt once in its training forwards
(r1cli/training/shared_prefix.py; `--no-shared-prefix` turns that off). Sizes are prompts x
generations x tokens per step. Each side runs in
its own process so that peak RSS belongs to it alone. s/step is the mean of TRL's `step_time`
over the steps after the first (the first carries one-time costs); `wall` is the whole child
process after start-up: imports, model load, data, training and the final save.
Target with r1's generation: TRL / r1 ≥ 1.3x in s/step at every size, peak RSS within 5%.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rows(n: int) -> list[dict]:
    from r1cli.tasks import generate

    return list(generate("arithmetic", n, seed=1))


def _common(args: argparse.Namespace, out: str) -> dict:
    return {"output_dir": out, "max_steps": args.steps, "num_generations": args.generations,
            "per_device_train_batch_size": args.prompts * args.generations, "max_completion_length": args.tokens,
            "beta": 0.001, "logging_steps": 1, "report_to": "none", "disable_tqdm": True, "save_steps": 1000,
            "seed": 0}


GENERATION_SECONDS: list[float] = []  # one entry per generation call of the child's run


def _timed(fn):
    """`fn`, adding each call's seconds to GENERATION_SECONDS."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            GENERATION_SECONDS.append(time.perf_counter() - t0)
    return wrapper


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _result(log_history: list[dict], wall: float) -> dict:
    steps = [e["step_time"] for e in log_history if "step_time" in e]
    later = steps[1:] or steps
    gen = GENERATION_SECONDS[1:] or GENERATION_SECONDS  # one generation per step (steps_per_generation 1)
    return {"s_per_step": sum(later) / len(later), "first_step_s": steps[0] if steps else None, "wall_s": wall,
            "gen_s_per_step": sum(gen) / len(gen) if gen else None,
            "mean_tokens": _mean([e.get("completions/mean_length", e.get("completion_length")) for e in log_history
                                  if "completions/mean_length" in e or "completion_length" in e]),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "steps": len(steps)}


def child_r1(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    from r1cli.cli.grpo import run
    from r1cli.training import generation
    from r1cli.training.grpo import GRPOSettings, iter_metrics

    if args.generation == "r1":
        generation.R1Rollout.__call__ = _timed(generation.R1Rollout.__call__)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _rows(args.prompts * args.steps)))
        trl = _common(args, str(Path(tmp) / "run"))
        flags = {"model": args.model, "data": str(data), "reward": ("accuracy", "format"), "template": "chat",
                 "generation": args.generation, "shared_prefix": args.shared_prefix,
                 **{k: v for k, v in trl.items() if k != "output_dir"}, "output": trl["output_dir"]}
        settings = GRPOSettings.build(flags)
        run(settings, quiet=True)
        wall = time.perf_counter() - t0
        history = list(iter_metrics(Path(trl["output_dir"]) / "metrics.jsonl"))
    return _result(history, wall)


def child_trl(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from r1cli import rewards
    from r1cli.models import resolve_model
    from r1cli.rewards.trl import to_trl
    from r1cli.templates import render

    rows = [{**r, "prompt": render(r["prompt"], "chat")} for r in _rows(args.prompts * args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(**_common(args, str(Path(tmp) / "run")), bf16=False,
                            use_cpu=not torch.cuda.is_available())
        fns = [to_trl(r) for r in rewards.resolve(["accuracy", "format"])]
        trainer = GRPOTrainer(model=resolve_model(args.model), reward_funcs=fns, args=config,
                              train_dataset=Dataset.from_list(rows))
        trainer.model.generate = _timed(trainer.model.generate)  # TRL's generation: one batched generate
        trainer.train()
        trainer.save_model(config.output_dir)
        wall = time.perf_counter() - t0
        history = trainer.state.log_history
    return _result(history, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sizes", default="2x4x64,2x8x128", help="PROMPTSxGENERATIONSxTOKENS, comma-separated")
    parser.add_argument("--generation", choices=("r1", "trl"), default="r1")
    parser.add_argument("--shared-prefix", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--child", choices=("r1", "trl"))
    args = parser.parse_args()
    if args.child:
        result = child_r1(args) if args.child == "r1" else child_trl(args)
        print(json.dumps(result))
        return
    from r1cli.models import resolve_model

    resolve_model(args.model)  # build a cached alias once, outside the timed children
    report = []
    for size in args.sizes.split(","):
        prompts, generations, tokens = (int(x) for x in size.lower().split("x"))
        base = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps), "--prompts", str(prompts),
                "--generations", str(generations), "--tokens", str(tokens), "--generation", args.generation,
                "--shared-prefix" if args.shared_prefix else "--no-shared-prefix"]
        results = {}
        for kind in ("trl", "r1"):
            proc = subprocess.run([*base, "--child", kind], capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"the {kind} run failed (exit {proc.returncode})")
            results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        trl, r1 = results["trl"], results["r1"]
        print(f"model {args.model}, r1 generation {args.generation}, shared prefix {args.shared_prefix}: "
              f"{args.steps} steps of {prompts} prompts × {generations} generations × {tokens} tokens")
        print(f"{'':10}{'s/step':>10}{'gen s/step':>12}{'1st step s':>12}{'wall s':>10}{'peak RSS MB':>13}"
              f"{'mean tokens':>13}")
        for name, row in (("TRL", trl), ("r1 grpo", r1)):
            gen = "-" if row["gen_s_per_step"] is None else f"{row['gen_s_per_step']:.2f}"
            tokens_ = "-" if row.get("mean_tokens") is None else f"{row['mean_tokens']:.1f}"
            print(f"{name:10}{row['s_per_step']:>10.2f}{gen:>12}{row['first_step_s']:>12.2f}{row['wall_s']:>10.1f}"
                  f"{row['rss_mb']:>13.0f}{tokens_:>13}")
        if trl["gen_s_per_step"] and r1["gen_s_per_step"]:
            print(f"generation alone, TRL / r1: {trl['gen_s_per_step'] / r1['gen_s_per_step']:.2f}×; share of "
                  f"TRL's step spent generating: {trl['gen_s_per_step'] / trl['s_per_step']:.0%}")
        print(f"TRL / r1 s/step: {trl['s_per_step'] / r1['s_per_step']:.2f}× (target ≥ 1.3× with r1 generation); "
              f"r1 / TRL peak RSS: {r1['rss_mb'] / trl['rss_mb']:.3f}× (target ≤ 1.05×)")
        report.append({"size": size, "results": results})
    print(json.dumps({"settings": vars(args), "runs": report}))


if __name__ == "__main__":
    main()
