"""Code-reward throughput: sandboxed executions per second for small programs.

    python benchmarks/sandbox.py [--runs 200] [--tests 3] [--workers 1,2,4,8]

Each run scores one few-line program against `--tests` stdin/stdout tests with the `code`
reward's machinery (`run_tests`): one sandbox per completion, one fork per test. For
comparison, "process per test" starts a fresh sandbox (`run_python`) for every test. Rows
cover each isolation mode this machine offers and N parallel workers (threads: each run is a
child process, so the GIL is not the limit). Prints a table on stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from r1cli.sandbox import Limits, run_python, run_tests

PROGRAM = """\
n = int(input())
xs = list(map(int, input().split()))
print(sum(xs) * n)
"""


def make_tests(k: int) -> list[dict[str, str]]:
    return [{"input": f"{i + 1}\n{i} {i + 1} {i + 2}\n", "output": str((3 * i + 3) * (i + 1))} for i in range(k)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tests", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4,8")
    args = parser.parse_args()
    tests = make_tests(args.tests)
    modes = []
    for namespaces in (True, False):
        limits = Limits(namespaces=namespaces, timeout_s=10)
        mode = run_python("pass", limits=limits).isolation
        if mode not in [m for m, _ in modes]:
            modes.append((mode, limits))
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{os.cpu_count()} CPUs, {args.runs} completions x {args.tests} tests, program of {PROGRAM.count(chr(10))} lines")
    print(f"{'isolation':<16} {'strategy':<17} {'workers':>7} {'compl/s':>8} {'tests/s':>8} {'median ms':>9}")
    for mode, limits in modes:
        plan = [("one sandbox", one_sandbox, w, args.runs) for w in workers]
        # a sandbox per test is several times slower: half the runs, fewest and most workers only
        plan += [("process per test", process_per_test, w, max(args.runs // 2, 10)) for w in sorted({workers[0], workers[-1]})]
        for strategy, fn, n, runs in plan:
            rate, median = measure(fn, runs, n, tests, limits)
            print(f"{mode:<16} {strategy:<17} {n:>7} {rate:>8.1f} {rate * args.tests:>8.1f} {median * 1000:>9.1f}", flush=True)

if __name__ == "__main__":
    main()
