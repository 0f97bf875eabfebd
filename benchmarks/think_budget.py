"""A thinking-budget sweep against a single run at its largest budget, and against one run per budget.

    python benchmarks/think_budget.py [--prompts 16] [--samples 4] [--budgets 16,32,64,128] [--answer-budget 48]

SmolLM2-135M-Instruct (the packaged default), the r1-zero template with `<think>` prefilled,
T=0.6, top-p 0.95, answers ending at `</answer>` or after --answer-budget tokens past the think
block, at every budget (`--answer-budget 0`: no allowance, answers run to the largest budget +
48 tokens in total, the setting before answer budgets existed). Three measurements in one
process, after a warm-up, on the same prompts and seeds:

- single: one run at the largest budget (the cost a sweep is compared with);
- sweep:  `generate_budgets` over every budget (one decode; smaller budgets fork from the prefix);
- separate: one run per budget (what a sweep costs without sharing).

The target: sweep ≤ 1.6 × single. Each measurement is printed to stderr as it finishes; stdout
gets the table, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--budgets", default="16,32,64,128")
    parser.add_argument("--answer-budget", type=int, default=48, help="tokens after the think block (0: none)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-separate", action="store_true", help="skip the one-run-per-budget measurement")
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
    params = SamplingParams(n=args.samples, max_new_tokens=max(budgets) + (args.answer_budget or 48), seed=0,
                            stop=("</answer>",), think_close=think_close("r1-zero"),
                            answer_budget=args.answer_budget or None)

    def tokens(gens) -> int:
        return sum(c.completion_tokens for g in gens for c in g.completions)

    def timed(label: str, fn):
        t = time.perf_counter()
        out = fn()
        took = time.perf_counter() - t
        print(f"{label}: {took:.1f} s", file=sys.stderr, flush=True)
        return out, took

    engine.generate(prompts[:2], replace(params, n=1, max_new_tokens=8, think_budget=4), keys=keys[:2])  # warm-up
    single, single_s = timed(f"single run at budget {max(budgets)}",
                             lambda: engine.generate(prompts, replace(params, think_budget=max(budgets)), keys=keys))
    sweep, sweep_s = timed(f"sweep over {budgets}", lambda: generate_budgets(engine, prompts, params, budgets, keys=keys))
    separate_s = None
    if not args.no_separate:
        _, separate_s = timed("one run per budget", lambda: {
            b: engine.generate(prompts, replace(params, think_budget=b), keys=keys) for b in budgets})
    same = sum(a == b for g, h in zip(single, sweep[max(budgets)]) for a, b in zip(g.completions, h.completions))
    print(f"{args.prompts} prompts × {args.samples} samples, budgets {budgets}, answer budget "
          f"{params.answer_budget}, dtype "
          f"{str(engine.model.dtype).removeprefix('torch.')}")
    print(f"{'':22}{'seconds':>9}{'× single':>10}")
    for name, took in (("single (largest)", single_s), ("sweep (shared)", sweep_s), ("one run per budget", separate_s)):
        if took is not None:
            print(f"{name:22}{took:>9.1f}{took / single_s:>10.2f}")
    print(f"sweep / single: {sweep_s / single_s:.2f}× (target ≤ 1.6×)")
    print(json.dumps({
        "model": args.model, "dtype": str(engine.model.dtype).removeprefix("torch."), "prompts": args.prompts,
        "samples": args.samples, "budgets": budgets, "max_new_tokens": params.max_new_tokens,
        "answer_budget": params.answer_budget,
        "single_s": round(single_s, 2), "single_tokens": tokens(single),
        "single_tok_per_s": round(tokens(single) / single_s, 1),
        "sweep_s": round(sweep_s, 2), "sweep_tokens": sum(tokens(g) for g in sweep.values()),
        "separate_s": separate_s and round(separate_s, 2),
        "sweep_over_single": round(sweep_s / single_s, 3), "separate_over_single": separate_s and round(separate_s / single_s, 3),
        "largest_budget_identical": f"{same}/{args.prompts * args.samples}",
        "mean_think_tokens": {b: round(sum(c.think_tokens for g in gens for c in g.completions)
                                       / (args.prompts * args.samples), 1) for b, gens in sweep.items()},
    }))


if __name__ == "__main__":
    main()
