"""Rollout throughput: r1's hf engine against a naive `generate` loop, in the same run.

    python benchmarks/rollout.py [--prompts 16] [--samples 4] [--new-tokens 128] [--batch-size 64]

SmolLM2-135M-Instruct (the packaged default), chat template, T=0.6, top-p 0.95. Each
measurement runs in its own process so that peak RSS belongs to it alone. "forced" runs
generate exactly --new-tokens per completion (EOS suppressed) so both sides count the same
tokens; "eos" runs stop at EOS (useful tokens only). The naive baseline calls
`model.generate(..., num_return_sequences=samples)` one prompt at a time.

The compute bound is the matmul FLOP/s measured here divided by 2 × parameters (the FLOPs of
one token through the weights); attention and sampling make the real ceiling lower.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _prompts(n: int) -> list[list[dict[str, str]]]:
    from r1cli.tasks import generate
    from r1cli.templates import render

    return [render(r["prompt"], "chat") for r in generate("arithmetic", n, seed=1)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, stop: str, args: argparse.Namespace) -> dict:
    import torch

    from r1cli.engines import SamplingParams
    from r1cli.engines.hf import HFEngine
    from r1cli.models import resolve_model

    path = resolve_model("smollm2-135m")
    # the naive loop uses the model as transformers loads it (fp32); r1 runs with its default dtype
    # (bf16 on CPUs with bf16 instructions) and, for a like-for-like row, in fp32
    engine = HFEngine(path, batch_size=args.batch_size, dtype=None if kind == "r1" else "float32")
    prompts = _prompts(args.prompts)
    forced = stop == "forced"
    params = SamplingParams(n=args.samples, max_new_tokens=args.new_tokens, temperature=0.6, top_p=0.95,
                            seed=0, ignore_eos=forced)
    # warm-up: one short call so one-time costs (allocator, kernels) are not timed
    engine.generate(prompts[:1], SamplingParams(n=1, max_new_tokens=4))
    if kind.startswith("r1"):
        t0 = time.perf_counter()
        gens = engine.generate(prompts, params)
        dt = time.perf_counter() - t0
        tokens = sum(c.completion_tokens for g in gens for c in g.completions)
    else:
        tok, model = engine.tokenizer, engine.model
        torch.manual_seed(0)
        tokens = 0
        t0 = time.perf_counter()
        for p in prompts:
            text = tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
            enc = tok(text, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(**enc, do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=args.new_tokens,
                                     min_new_tokens=args.new_tokens if forced else None,
                                     num_return_sequences=args.samples, pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for row in new.tolist():
                end = next((k for k, t in enumerate(row) if t == tok.eos_token_id), None)
                tokens += len(row) if end is None or forced else end + 1
        dt = time.perf_counter() - t0
    params_count = sum(p.numel() for p in engine.model.parameters())
    return {"dtype": str(next(engine.model.parameters()).dtype).removeprefix("torch."), "tokens": tokens, "seconds": dt, "tok_s": tokens / dt, "rss_mb": _peak_rss_mb(), "params": params_count,
            "threads": torch.get_num_threads()}


def matmul_flops(dtype: str, seconds: float = 3.0) -> float:
    import torch

    a = torch.randn(2048, 2048, dtype=getattr(torch, dtype))
    b = torch.randn(2048, 2048, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return n * 2 * 2048**3 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--stops", default="forced,eos", help="which runs: forced, eos, or both (default)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "STOP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args)))
        return

    from r1cli.models import resolve_model

    resolve_model("smollm2-135m")  # convert once, outside the timings
    flops = {dtype: matmul_flops(dtype) for dtype in ("float32", "bfloat16")}
    rows = []
    for stop in args.stops.split(","):
        for kind in ("naive", "r1-fp32", "r1"):
            cmd = [sys.executable, __file__, "--child", kind, stop, "--prompts", str(args.prompts), "--samples",
                   str(args.samples), "--new-tokens", str(args.new_tokens), "--batch-size", str(args.batch_size)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            rows.append((stop, kind, res))
            print(f"  {stop:6} {kind:7} {res['tok_s']:8.1f} tok/s  {res['rss_mb']:7.0f} MB", file=sys.stderr)
    params = rows[0][2]["params"]
    bound = {dtype: f / (2 * params) for dtype, f in flops.items()}
    print(f"\nrollout: SmolLM2-135M ({params / 1e6:.1f}M params), {args.prompts} prompts x {args.samples} samples x "
          f"{args.new_tokens} new tokens, T=0.6 top-p 0.95, batch {args.batch_size}, {rows[0][2]['threads']} threads")
    for dtype in flops:
        print(f"matmul 2048^3 {dtype}: {flops[dtype] / 1e9:.1f} GFLOP/s -> compute bound {bound[dtype]:,.0f} tok/s")
    print()
    print("| stop   | engine          | dtype    | tokens | seconds | tok/s  | vs naive | of bound | peak RSS |")
    print("|--------|-----------------|----------|-------:|--------:|-------:|---------:|---------:|---------:|")
    naive = {stop: res["tok_s"] for stop, kind, res in rows if kind == "naive"}
    for stop, kind, res in rows:
        name = "naive generate" if kind == "naive" else "r1 rollout (hf)"
        print(f"| {stop:6} | {name:15} | {res['dtype']:8} | {res['tokens']:6d} | {res['seconds']:7.1f} | {res['tok_s']:6.1f} | "
              f"{res['tok_s'] / naive[stop]:7.2f}x | {res['tok_s'] / bound[res['dtype']]:7.1%} | {res['rss_mb']:5.0f} MB |")


if __name__ == "__main__":
    main()
