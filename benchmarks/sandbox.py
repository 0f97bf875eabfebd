"""Code-reward throughput: sandboxed executions per second for small programs.

    python benchmarks/sandbox.py [--runs 200] [--tests 3] [--workers 1,2,4,8] [--against REV] [--rounds 3]

Each run scores one few-line program against `--tests` stdin/stdout tests with the `code`
reward's machinery (`run_tests`): one sandbox per completion, one fork per test. For
comparison, "process per test" starts a fresh sandbox (`run_python`) for every test. Rows
cover each isolation mode this machine offers (the fallback only as opted in) and N parallel
workers (threads: each run is a child process, so the GIL is not the limit). Prints a table on
stdout.

`--against REV` measures the default mode of this tree and of git revision REV (its `r1cli`
extracted with `git archive` into a temporary folder and run in a subprocess) in alternating
rounds, so that both see the same machine load; it prints the best round of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from r1cli.sandbox import Limits, run_python, run_tests

PROGRAM = """\
n = int(input())
xs = list(map(int, input().split()))
print(sum(xs) * n)
"""
ROOT = Path(__file__).resolve().parents[1]


def make_tests(k: int) -> list[dict[str, str]]:
    return [{"input": f"{i + 1}\n{i} {i + 1} {i + 2}\n", "output": str((3 * i + 3) * (i + 1))} for i in range(k)]


def limits_for(namespaces: bool) -> Limits:
    try:
        return Limits(namespaces=namespaces, timeout_s=10, allow_unconfined=not namespaces)
    except TypeError:  # a revision from before the opt-in: its fallback needed none
        return Limits(namespaces=namespaces, timeout_s=10)


def one_sandbox(tests: list[dict[str, str]], limits: Limits) -> float:
    score = run_tests(PROGRAM, tests, limits=limits)
    assert score == 1.0, score
    return score


def process_per_test(tests: list[dict[str, str]], limits: Limits) -> float:
    ok = [run_python(PROGRAM, stdin=t["input"], limits=limits).stdout.strip() == t["output"] for t in tests]
    assert all(ok)
    return 1.0


def measure(fn, runs: int, workers: int, tests: list[dict[str, str]], limits: Limits) -> tuple[float, float]:
    """(completions per second, median seconds per completion)."""
    latencies: list[float] = []

    def timed(_: int) -> None:
        start = time.perf_counter()
        fn(tests, limits)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    if workers == 1:
        for i in range(runs):
            timed(i)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(timed, range(runs)))
    return runs / (time.perf_counter() - start), statistics.median(latencies)


def compare(rev: str, runs: int, tests: int, workers: list[int], rounds: int) -> None:
    """The default mode here and at `rev`, in alternating rounds: best completions/s of each."""
    with tempfile.TemporaryDirectory(prefix="r1-bench-") as tree:
        archive = subprocess.run(["git", "archive", rev, "r1cli"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        trees = {"this tree": str(ROOT), rev: tree}
        best: dict[tuple[str, int], float] = {}
        for _ in range(rounds):
            for name, path in trees.items():
                for w in workers:
                    out = subprocess.run([sys.executable, __file__, "--one", str(w), "--runs", str(runs),
                                          "--tests", str(tests)], check=True, capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": path}, cwd=path)
                    row = json.loads(out.stdout)
                    best[name, w] = max(best.get((name, w), 0.0), row["rate"])
                    mode = row["mode"]
                    print(f"  {name:<10} {mode:<28} workers {w}: {row['rate']:.1f} compl/s", file=sys.stderr, flush=True)
        print(f"{os.cpu_count()} CPUs, {runs} completions x {tests} tests, best of {rounds} alternating rounds")
        print(f"{'workers':>7} {'this tree':>10} {rev:>10} {'ratio':>6}")
        for w in workers:
            print(f"{w:>7} {best['this tree', w]:>10.1f} {best[rev, w]:>10.1f} {best['this tree', w] / best[rev, w]:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tests", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--against", metavar="REV", help="compare the default mode with git revision REV")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one default-mode measurement, as JSON
    args = parser.parse_args()
    tests = make_tests(args.tests)
    workers = [int(w) for w in args.workers.split(",")]
    if args.one is not None:
        limits = limits_for(True)
        mode = run_python("pass", limits=limits).isolation
        rate, median = measure(one_sandbox, args.runs, args.one, tests, limits)
        print(json.dumps({"mode": mode, "rate": rate, "median": median}))
        return
    if args.against:
        compare(args.against, args.runs, args.tests, workers, args.rounds)
        return
    modes = []
    for namespaces in (True, False):
        limits = limits_for(namespaces)
        mode = run_python("pass", limits=limits).isolation
        if mode not in [m for m, _ in modes]:
            modes.append((mode, limits))
    print(f"{os.cpu_count()} CPUs, {args.runs} completions x {args.tests} tests, program of {PROGRAM.count(chr(10))} lines")
    print(f"{'isolation':<28} {'strategy':<17} {'workers':>7} {'compl/s':>8} {'tests/s':>8} {'median ms':>9}")
    for mode, limits in modes:
        plan = [("one sandbox", one_sandbox, w, args.runs) for w in workers]
        # a sandbox per test is several times slower: half the runs, fewest and most workers only
        plan += [("process per test", process_per_test, w, max(args.runs // 2, 10)) for w in sorted({workers[0], workers[-1]})]
        for strategy, fn, n, runs in plan:
            rate, median = measure(fn, runs, n, tests, limits)
            print(f"{mode:<28} {strategy:<17} {n:>7} {rate:>8.1f} {rate * args.tests:>8.1f} {median * 1000:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
