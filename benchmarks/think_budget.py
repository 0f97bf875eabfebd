"""A thinking-budget sweep against a single run at its largest budget, and against one run per budget.

    python benchmarks/think_budget.py [--prompts 16] [--samples 4] [--budgets 16,32,64,128] [--answer-tokens 48]

SmolLM2-135M-Instruct (the packaged default), the r1-zero template with `<think>` prefilled,
T=0.6, top-p 0.95, answers ending at `</answer>` (or after --answer-tokens past the largest
budget). Three measurements in one process, after a warm-up, on the same prompts and seeds:

- single: one run at the largest budget (the cost a sweep is compared with);
- sweep:  `generate_budgets` over every budget (one decode; smaller budgets fork from the prefix);
- separate: one run per budget (what a sweep costs without sharing).

The target: sweep ≤ 1.6 × single. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--budgets", default="16,32,64,128")
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from dataclasses import replace

    from r1cli.engines import SamplingParams, generate_budgets
    from r1cli.engines.hf import HFEngine
    from r1cli.models import resolve_model
    from r1cli.rollout import think_close
    from r1cli.tasks import generate
    from r1cli.templates import render

    budgets = sorted({int(b) for b in args.budgets.split(",")})
    engine = HFEngine(resolve_model(args.model), batch_size=args.batch_size)
    records = list(generate("arithmetic", args.prompts, seed=1))
    prompts = [render(r["prompt"], "r1-zero", prefill="<think>") for r in records]
    keys = [r["id"] for r in records]
    params = SamplingParams(n=args.samples, max_new_tokens=max(budgets) + args.answer_tokens, seed=0,
                            stop=("</answer>",), think_close=think_close("r1-zero"))

    def tokens(gens) -> int:
        return sum(c.completion_tokens for g in gens for c in g.completions)

    engine.generate(prompts[:2], replace(params, n=1, max_new_tokens=8, think_budget=4), keys=keys[:2])  # warm-up
    t = time.perf_counter()
    single = engine.generate(prompts, replace(params, think_budget=max(budgets)), keys=keys)
    single_s = time.perf_counter() - t
    t = time.perf_counter()
    sweep = generate_budgets(engine, prompts, params, budgets, keys=keys)
    sweep_s = time.perf_counter() - t
    t = time.perf_counter()
    separate = {b: engine.generate(prompts, replace(params, think_budget=b), keys=keys) for b in budgets}
    separate_s = time.perf_counter() - t
    same = sum(a == b for g, h in zip(single, sweep[max(budgets)]) for a, b in zip(g.completions, h.completions))
    print(json.dumps({
        "model": args.model, "dtype": str(engine.model.dtype).removeprefix("torch."), "prompts": args.prompts,
        "samples": args.samples, "budgets": budgets, "max_new_tokens": params.max_new_tokens,
        "single_s": round(single_s, 2), "single_tokens": tokens(single),
        "single_tok_per_s": round(tokens(single) / single_s, 1),
        "sweep_s": round(sweep_s, 2), "sweep_tokens": sum(tokens(g) for g in sweep.values()),
        "separate_s": round(separate_s, 2),
        "sweep_over_single": round(sweep_s / single_s, 3), "separate_over_single": round(separate_s / single_s, 3),
        "largest_budget_identical": f"{same}/{args.prompts * args.samples}",
        "mean_think_tokens": {b: round(sum(c.think_tokens for g in gens for c in g.completions)
                                       / (args.prompts * args.samples), 1) for b, gens in sweep.items()},
    }))


if __name__ == "__main__":
    main()
