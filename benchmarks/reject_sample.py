r"""Rejection-sampling throughput and memory: `r1 reject-sample` against two baselines, in the same run.

    python benchmarks/reject_sample.py [--count 1000000] [--small 100000] [--group 8] [--seed 0]
                                       [--tmp DIR] [--no-naive] [--keep]

Builds `--count` synthetic scored records (GRPO groups of `--group` samples per prompt, shaped
as `r1 rollout | r1 score` writes them: prompt, answer, sample, a <think> CoT of 60–250 words in
paragraphs, finish_reason, token counts, model, rewards, reward, pred) into a JSONL file, and its
first `--small` records into another. Per sample: 50% correct, 5% truncated at the length limit,
10% repeat an earlier sample of the group (spacing aside), 2% mix Chinese words into an English
CoT, 1% hold a code block, 1% are one 350-word paragraph.

Every run is a child process reading the file and writing to /dev/null; its wall time and peak
RSS (`os.wait4`'s ru_maxrss: that child alone) are reported for both sizes:

- **r1 reject-sample**: the CLI with R1's defaults, and with `--dedup near --max-per-prompt 4`.
- **floor**: `json.loads` + `json.dumps` of every line, streaming, no filtering: the cost any
  streaming JSONL tool pays.
- **naive**: load every record into a list, group them in a dict, keep the correct, finished,
  exactly-deduplicated ones (a fraction of the work r1 does): what a load-everything script costs
  in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

WORDS = ("first", "we", "compute", "the", "sum", "then", "multiply", "carefully", "check", "so", "result", "is",
         "step", "wait", "let", "me", "verify", "again", "this", "gives", "number", "both", "sides", "equal",
         "apples", "each", "total", "remaining", "hmm", "right", "because", "divide", "by", "and", "of")
ZH = ("所以", "我们", "计算", "结果", "检查")


def cot(rng: random.Random, words: int, paragraph: int = 40) -> str:
    picked = rng.choices(WORDS, k=words)
    lines = [" ".join(picked[i : i + paragraph]) + "." for i in range(0, words, paragraph)]
    return "\n\n".join(lines)


def build(path: str, small_path: str, count: int, small: int, group: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as big, open(small_path, "w", encoding="utf-8") as head:
        n = 0
        for p in range(-(-count // group)):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            prompt = {"id": f"p{p:07d}", "prompt": f"Compute {a} + {b}. Put the final answer in \\boxed{{}}.",
                      "answer": str(a + b), "task": "math"}
            done: list[str] = []
            for s in range(group):
                if n >= count:
                    return
                roll = rng.random()
                if done and roll < 0.10:
                    text = rng.choice(done).replace("\n\n", "\n\n ", 1)  # a repeat, spacing aside
                else:
                    thought = cot(rng, rng.randint(60, 250))
                    if roll < 0.12:
                        thought = thought.replace(" the ", f" {rng.choice(ZH)} ", 5)
                    elif roll < 0.13:
                        thought += "\n\n```python\nprint(%d + %d)\n```" % (a, b)
                    elif roll < 0.14:
                        thought = " ".join(rng.choices(WORDS, k=350))
                    value = a + b if rng.random() < 0.5 else a + b + rng.choice([-10, -1, 1, 2])
                    text = f"<think>\n{thought}\n</think>\nThe answer is \\boxed{{{value}}}."
                    done.append(text)
                truncated = rng.random() < 0.05
                if truncated:
                    text = text[: len(text) // 2]
                correct = not truncated and text.endswith(f"\\boxed{{{a + b}}}.")
                record = {**prompt, "sample": s, "completion": text, "finish_reason": "length" if truncated else "stop",
                          "prompt_tokens": 24, "completion_tokens": len(text) // 4, "model": "synthetic",
                          "rewards": {"accuracy": 1.0 if correct else 0.0, "format": 0.0},
                          "reward": 1.0 if correct else 0.0, "pred": None if truncated else text[-6:-2]}
                line = json.dumps(record, ensure_ascii=False) + "\n"
                big.write(line)
                if n < small:
                    head.write(line)
                n += 1


# ---- the baselines, run as children of this script ------------------------------------------------


def floor(path: str) -> None:
    out = sys.stdout
    with open(path, encoding="utf-8") as fp:
        for line in fp:
            out.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")


def naive(path: str) -> None:
    with open(path, encoding="utf-8") as fp:
        records = [json.loads(line) for line in fp]
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["id"], []).append(record)
    out = sys.stdout
    for samples in groups.values():
        seen: set[str] = set()
        for r in samples:
            key = "".join(r["completion"].split())
            if r["rewards"]["accuracy"] == 1.0 and r["finish_reason"] != "length" and key not in seen:
                seen.add(key)
                out.write(json.dumps(r, ensure_ascii=False) + "\n")


def measure(argv: list[str]) -> dict:
    """Run `argv` with stdout to /dev/null; wall seconds, peak RSS (MB) and stderr of that child alone."""
    with open(os.devnull, "w") as devnull, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=devnull, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "stderr": stderr.strip()}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("--floor", "--naive"):
        {"--floor": floor, "--naive": naive}[sys.argv[1]](sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="records in the large file")
    ap.add_argument("--small", type=int, default=100_000, help="records in the small file (the large one's head)")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="folder for the two JSONL files (default: the system's)")
    ap.add_argument("--no-naive", action="store_true", help="skip the load-everything baseline")
    ap.add_argument("--keep", action="store_true", help="keep the JSONL files")
    args = ap.parse_args()

    folder = tempfile.mkdtemp(prefix="r1-reject-bench-", dir=args.tmp)
    large, small = os.path.join(folder, "large.jsonl"), os.path.join(folder, "small.jsonl")
    t = time.perf_counter()
    build(large, small, args.count, args.small, args.group, args.seed)
    mb = os.path.getsize(large) / 2**20
    print(f"built {args.count:,} records ({mb:,.0f} MB) in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    r1 = [sys.executable, "-m", "r1cli", "reject-sample"]
    runs = {
        "r1 reject-sample (R1 defaults)": lambda path: [*r1, path],
        "r1 reject-sample --dedup near --max-per-prompt 4": lambda path: [*r1, path, "--dedup", "near",
                                                                          "--max-per-prompt", "4"],
        "floor: json.loads + json.dumps per line": lambda path: [sys.executable, __file__, "--floor", path],
    }
    if not args.no_naive:
        runs["naive: load all, group in a dict"] = lambda path: [sys.executable, __file__, "--naive", path]
    results: dict[str, dict[int, dict]] = {}
    try:
        for name, argv in runs.items():
            results[name] = {}
            for size, path in ((args.small, small), (args.count, large)):
                results[name][size] = measure(argv(path))
                print(f"{name} @ {size:,}: {results[name][size]['wall']:.1f} s", file=sys.stderr)
    finally:
        if not args.keep:
            for path in (large, small):
                os.unlink(path)
            os.rmdir(folder)

    print(f"\n{args.count:,} synthetic scored records ({mb:,.0f} MB, groups of {args.group}), "
          f"{os.cpu_count()} CPUs; peak RSS of the child process\n")
    print(f"| run | records/s @ {args.small:,} | records/s @ {args.count:,} | peak RSS MB @ {args.small:,} "
          f"| peak RSS MB @ {args.count:,} | RSS ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, by_size in results.items():
        s, c = by_size[args.small], by_size[args.count]
        print(f"| {name} | {args.small / s['wall']:,.0f} | {args.count / c['wall']:,.0f} | {s['rss']:,.0f} "
              f"| {c['rss']:,.0f} | {c['rss'] / s['rss']:.2f}× |")
    for name, by_size in results.items():
        if name.startswith("r1"):
            print(f"\n{name} @ {args.count:,}: {by_size[args.count]['stderr']}")


if __name__ == "__main__":
    main()
