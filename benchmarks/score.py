r"""Scoring throughput: `r1 score`'s engine against a sequential math-verify loop, in the same run.

    python benchmarks/score.py [--count 20000] [--workers N] [--timeout 5] [--no-affinity-run]
                               [--adversarial 0.01] [--skip-kind tower] [--no-baseline]
                               [--no-literal-shortcut] [--no-expression-row]

Completions are built from the package's own arithmetic tasks (`r1cli.tasks.generate`), in GRPO
groups of 8 samples per prompt: a reasoning part, then the answer in \boxed{}, in <answer> tags
or as plain text; the value written as 12, 12.0, 12.00, \frac{24}{2}, $12$ or 12.; about half
of the fresh answers wrong; 30% of the samples repeat an earlier sample's answer of their group;
1% adversarial answers (a power tower 10^{10^{10^{10}}}, a 50-deep nested fraction, a 1 MB
number, an unbalanced \boxed{).

- **engine**: `score_records(records, [accuracy], workers=default)`: the `r1 score` engine
  (process pool, per-record timeout, order kept, repeated answers routed to the worker that
  has their verdict cached). Latency is a record's scoring time in its worker (or until its
  worker was killed at the timeout). Integer and fraction literals (all of this benchmark's
  non-adversarial answers) are compared exactly without math-verify; `--no-literal-shortcut`
  sends every answer through math-verify, to measure the pool on math-verify-bound work.
- **expressions**: the same prompts, every answer written as an expression of its value
  (``7 + 5``, ``\sqrt{144}``, ``12 \cdot 1``, ``\frac{24}{2} + 0``): no answer is a literal,
  so every verdict goes through math-verify. Engine and baseline are both run on it.
- **CPU s**: CPU seconds the scorer used (the engine: parent + its workers). On a machine whose
  cores are busy with other work the wall-clock speed-up understates a pool (Linux's autogroup
  scheduler gives a session one share, however many processes it runs); "CPU speed-up" is the
  baseline's CPU over the scorer's, what the pool saves by caching and exact shortcuts before
  any parallelism: on N idle cores its wall-clock speed-up is about N times that.
- **baseline**: `math_verify.verify(parse(gold), parse(pred))` per record in one loop, as open-r1's
  accuracy reward does, given the same extracted prediction strings (no extraction cost; a
  completion without an extractable answer scores 0 without math-verify); in the expression run
  each prediction is given as $pred$, which math-verify needs to read bare LaTeX.

math-verify is imported before either is timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

NESTED = "1"
for _ in range(50):
    NESTED = r"\frac{1}{" + NESTED + "}"
ADVERSARIAL = {
    "tower": r"\boxed{10^{10^{10^{10}}}}",
    "nested": "<answer>" + NESTED + "</answer>",
    "1 MB": r"\boxed{" + "9" * 1_000_000 + "}",
    "unbalanced": r"so the answer is \boxed{12",
}
WORDS = ("first", "we", "compute", "the", "sum", "then", "multiply", "carefully", "check", "so", "result", "is",
         "step", "wait", "let", "me", "verify", "again", "this", "gives")


def forms(value: int, rng: random.Random) -> str:
    """One of several spellings of the integer `value`."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    k = rng.randint(2, 4)
    return rng.choice([
        f"{value}", f"{value}.0", f"{value}.00", f"{sign}\\frac{{{v * k}}}{{{k}}}", f"${value}$", f"{value}.",
    ])


def expression(value: int, rng: random.Random) -> str:
    """One of several expressions whose value is the integer `value` (none a bare literal)."""
    d = rng.randint(1, 9)
    root = f"\\sqrt{{{value * value}}}" if value >= 0 else f"-\\sqrt{{{value * value}}}"
    return rng.choice([f"{value - d} + {d}", root, f"{value} \\cdot 1", f"\\frac{{{2 * value}}}{{2}} + 0",
                       f"({value + d}) - {d}"])


def completion(answer_text: str, container: str, prompt: str, rng: random.Random) -> str:
    think = f"<think>We need to {prompt[0].lower()}{prompt[1:]} " + " ".join(
        rng.choice(WORDS) for _ in range(rng.randint(40, 300))) + "</think>\n"
    if container == "boxed":
        return think + f"So the answer is \\boxed{{{answer_text}}}."
    if container == "tags":
        return think + f"<answer>{answer_text}</answer>"
    if container == "dollars":
        return think + f"The answer is ${answer_text}$."
    return think + f"The answer is {answer_text}."


def build(count: int, seed: int, group: int = 8, repeat: float = 0.3, adversarial: float = 0.01,
          kinds: tuple[str, ...] = tuple(ADVERSARIAL), expressions: bool = False) -> list[dict]:
    from r1cli.tasks import generate

    rng = random.Random(seed)
    prompts = []
    for difficulty in range(1, 6):
        prompts += list(generate("arithmetic", count // group // 5 + 1, seed=seed + difficulty, difficulty=difficulty))
    rng.shuffle(prompts)
    records: list[dict] = []
    n_adv = int(count * adversarial)
    adv_at = set(rng.sample(range(count), n_adv))
    for p in prompts:
        tails: list[str] = []
        for s in range(group):
            i = len(records)
            if i >= count:
                return records
            gold = int(p["answer"])
            reasoning = completion("", "plain", p["prompt"], rng).rsplit("The answer", 1)[0]
            if i in adv_at:
                kind = kinds[len([j for j in adv_at if j < i]) % len(kinds)]
                text, label = reasoning + ADVERSARIAL[kind], kind
            elif tails and rng.random() < repeat:
                text, label = reasoning + rng.choice(tails), "repeat"
            else:
                value = gold if rng.random() < 0.5 else gold + rng.choice([-10, -3, -2, -1, 1, 2, 5, 7, 10])
                container = rng.choices(["boxed", "tags", "plain"], weights=[45, 45, 10])[0]
                if expressions:  # LaTeX in running text needs $…$ to be read at all
                    written, container = expression(value, rng), "dollars" if container == "plain" else container
                else:
                    written = forms(value, rng)
                text = completion(written, container, p["prompt"], rng)
                tails.append(text.split("</think>\n", 1)[1])
                label = "fresh"
            records.append({**p, "sample": s, "completion": text, "kind": label})
    return records


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def run_engine(records: list[dict], workers: int | None, timeout: float, affinity: bool) -> dict:
    from r1cli import rewards
    from r1cli.scoring import ScoreStats, score_records

    stats = ScoreStats(latencies=[])
    fns = rewards.resolve(["accuracy"])
    before = os.times()
    start = time.perf_counter()
    verdicts = [r["rewards"]["accuracy"] for r in
                score_records(records, fns, workers=workers, timeout=timeout, stats=stats, affinity=affinity)]
    wall = time.perf_counter() - start
    after = os.times()  # the workers have been reaped: their CPU is in children_*
    cpu = sum(getattr(after, k) - getattr(before, k) for k in ("user", "system", "children_user", "children_system"))
    return {"wall": wall, "cpu": cpu, "lat": stats.latencies, "verdicts": verdicts, "timed_out": stats.timed_out}


def run_baseline(records: list[dict], preds: list[str | None], dollars: bool = False) -> dict:
    """`dollars`: give math-verify each prediction as $pred$ (parse extracts no LaTeX from a bare
    "\\sqrt{144}"), so that it judges the expressions rather than failing to read them."""
    from math_verify import parse, verify

    lat, verdicts = [], []
    start, cpu = time.perf_counter(), time.process_time()
    for record, pred in zip(records, preds):
        t = time.perf_counter()
        pred = pred if pred is None or not dollars else f"${pred}$"
        ok = False if pred is None else bool(verify(parse(record["answer"]), parse(pred)))
        lat.append(time.perf_counter() - t)
        verdicts.append(1.0 if ok else 0.0)
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "lat": lat, "verdicts": verdicts,
            "timed_out": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=20_000, help="completions to score")
    ap.add_argument("--workers", type=int, default=None, help="engine workers (default: one per CPU)")
    ap.add_argument("--timeout", type=float, default=5.0, help="engine per-record timeout, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adversarial", type=float, default=0.01, help="share of adversarial answers")
    ap.add_argument("--repeat", type=float, default=0.3, help="share of samples repeating an answer of their group")
    ap.add_argument("--skip-kind", action="append", default=[], choices=list(ADVERSARIAL),
                    help="leave this kind out of the adversarial answers (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the sequential math-verify loop")
    ap.add_argument("--no-affinity-run", action="store_true", help="skip the engine run without cache routing")
    ap.add_argument("--no-literal-shortcut", action="store_true",
                    help="engine: judge integer and fraction literals with math-verify too")
    ap.add_argument("--no-expression-row", action="store_true",
                    help="skip the run where every answer is an expression (engine and baseline)")
    args = ap.parse_args()

    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # one "Timeout during …" line per slow parse
    import math_verify  # noqa: F401  imported before anything is timed

    from r1cli.rewards.accuracy import extract_pred
    from r1cli.scoring import default_workers

    if args.no_literal_shortcut:
        from r1cli.verifiers import math as math_verifier

        math_verifier._literal = lambda answer: None  # the forked workers inherit it

    t = time.perf_counter()
    adv_kinds = tuple(k for k in ADVERSARIAL if k not in args.skip_kind)
    records = build(args.count, args.seed, repeat=args.repeat, adversarial=args.adversarial if adv_kinds else 0.0,
                    kinds=adv_kinds or tuple(ADVERSARIAL))
    preds = [extract_pred(r["completion"], r) for r in records]
    kinds = [r["kind"] for r in records]
    print(f"built {len(records):,} completions in {time.perf_counter() - t:.1f} s: "
          + ", ".join(f"{k} {kinds.count(k):,}" for k in sorted(set(kinds))), file=sys.stderr)
    workers = args.workers if args.workers is not None else default_workers()

    results = {}
    results[f"r1 engine ({workers} workers)"] = run_engine(records, args.workers, args.timeout, affinity=True)
    print("engine done", file=sys.stderr)
    if not args.no_affinity_run:
        results[f"r1 engine ({workers} workers, no cache routing)"] = run_engine(
            records, args.workers, args.timeout, affinity=False)
        print("engine without routing done", file=sys.stderr)
    if not args.no_baseline:
        results["baseline: verify(parse(gold), parse(pred)) loop"] = run_baseline(records, preds)
        print("baseline done", file=sys.stderr)

    if not args.no_expression_row:
        expr_records = build(args.count, args.seed, repeat=args.repeat, adversarial=0.0, expressions=True)
        expr_preds = [extract_pred(r["completion"], r) for r in expr_records]
        results["r1 engine, every answer an expression"] = run_engine(expr_records, args.workers, args.timeout, True)
        if not args.no_baseline:
            results["baseline, every answer an expression"] = run_baseline(expr_records, expr_preds, dollars=True)
        print("expression run done", file=sys.stderr)

    base = results.get("baseline: verify(parse(gold), parse(pred)) loop")
    expr_base = results.get("baseline, every answer an expression")
    print(f"\n{len(records):,} completions, {os.cpu_count()} CPUs, timeout {args.timeout:g} s\n")
    print("| scorer | wall s | records/s | p50 ms | p99 ms | max ms | > timeout + 0.1 s | timed out | speed-up "
          "| CPU s | CPU speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        over = sum(x > args.timeout + 0.1 for x in r["lat"])
        ref = expr_base if "expression" in name else base  # each against the baseline on its own records
        speed = f"{ref['wall'] / r['wall']:.2f}×" if ref else "-"
        cpu_speed = f"{ref['cpu'] / r['cpu']:.2f}×" if ref and r["cpu"] > 0 else "-"
        ms = [1000 * statistics.median(r["lat"]), 1000 * pct(r["lat"], 0.99), 1000 * max(r["lat"])]
        print(f"| {name} | {r['wall']:.1f} | {len(r['verdicts']) / r['wall']:,.0f} | {ms[0]:.2f} | {ms[1]:.1f} "
              f"| {ms[2]:,.0f} | {over} | {r['timed_out']} | {speed} | {r['cpu']:.1f} | {cpu_speed} |")
    if base:
        engine = next(iter(results.values()))
        clean = [i for i, k in enumerate(kinds) if k in ("fresh", "repeat")]
        agree = sum(engine["verdicts"][i] == base["verdicts"][i] for i in clean)
        print(f"\nverdicts agree on {agree:,} of {len(clean):,} non-adversarial completions"
              f" ({100 * agree / len(clean):.1f}%)")
        if expr_base:
            engine_expr = results["r1 engine, every answer an expression"]
            agree = sum(a == b for a, b in zip(engine_expr["verdicts"], expr_base["verdicts"]))
            print(f"expression run: verdicts agree on {agree:,} of {len(expr_base['verdicts']):,}")
        by_kind = {}
        for k in sorted(set(kinds)):
            idx = [i for i, kk in enumerate(kinds) if kk == k]
            by_kind[k] = idx
        print("\n| kind | n | baseline s total | engine: accuracy values |")
        print("|---|---:|---:|---|")
        for k, idx in by_kind.items():
            vals = [engine["verdicts"][i] for i in idx]
            summary = ", ".join(f"{v}: {vals.count(v)}" for v in sorted(set(vals), key=str))
            print(f"| {k} | {len(idx):,} | {sum(base['lat'][i] for i in idx):.1f} | {summary} |")


if __name__ == "__main__":
    main()
