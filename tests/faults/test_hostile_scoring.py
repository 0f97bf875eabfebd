"""1,000 mixed records of hostile code and adversarial math through `r1 score -r accuracy -r code`.

Every record must come out (in input order, exit 0) within a time budget computed from
--timeout and the worker count, no attack may succeed (each hostile program's test expects
the output it would print if it had worked), and no process may be left behind: the command
runs under a child subreaper, so any process that escaped its process group (a detached
sandbox program) is reparented there and counted; and no process whose command line names
the sandbox's folder (TMPDIR, set per test) may survive.

The programs follow tests/test_sandbox.py's hostile cases, and the answers
tests/test_scoring.py's adversarial ones, at scale and mixed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from faultkit import R1, ROOT, processes_with, r1_env, read_jsonl, write_jsonl

WORKERS = 2
TIMEOUT = 1.5  # --timeout: seconds a record may take
CODE_TIMEOUT = 0.5  # code.timeout_s: wall-clock (and CPU) limit of each test run in the sandbox


def program(body: str) -> str:
    return f"<think>I will write a program.</think>\n```python\n{body}\n```"


FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass"
DETACH = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(100)\n"
          "    os._exit(0)\nprint('detached')")
KILL_R1 = ("import os, signal\nkilled = 0\nfor pid in os.listdir('/proc'):\n"
           "    try:\n        if pid.isdigit() and b'r1cli' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
           "            os.kill(int(pid), signal.SIGKILL)\n            killed += 1\n"
           "    except Exception:\n        pass\nprint('killed', killed)")

# kind → (completion, the output its test expects: what it prints if the attack worked, records)
CODE = {
    "correct": (program("a, b = map(int, input().split())\nprint(a + b)"), "3", 12),
    "wrong": (program("print(0)"), "3", 8),
    "detach": (program(DETACH), "detached", 6),
    "memory-hog": (program("x = []\nwhile True:\n    x.append(' ' * 10**7)"), "done", 6),
    "socket": (program("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1).sendall(b'x')\n"
                       "print('sent')"), "sent", 6),
    "kill-parent": (program("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('killed')"), "killed", 6),
    "kill-r1": (program(KILL_R1), "killed 1", 6),
    "huge-output": (program("import sys\nwhile True:\n    sys.stdout.write('x' * 10**6)"), "x", 6),
    "os-system": (program("import os\nprint(os.system('echo pwned'))"), "pwned\n0", 6),
    "write-outside": (None, "written", 6),  # the target path is the test's: see hostile_records
    # these run until a limit stops them: each may take the whole --timeout
    "infinite-loop": (program("while True:\n    pass"), "done", 2),
    "sleep": (program("import time\ntime.sleep(100)\nprint('done')"), "done", 2),
    "fork-bomb": (program(FORK_BOMB), "survived", 2),
    "deep-recursion": (program("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n"
                               "print('deep')"), "deep", 2),
}

NESTED = "1"
for _ in range(60):
    NESTED = r"\frac{1}{" + NESTED + "}"
DEEP = "x"
for _ in range(400):
    DEEP = r"\sqrt{" + DEEP + "}"

# kind → (completion, gold answer, records; None = an even share of what is left); {n}: a number per record
MATH = {
    "right": (r"<think>Count them.</think><answer>{n}</answer>", "{n}", None),
    "wrong": (r"<think>Count them.</think><answer>{n}1</answer>", "{n}", None),
    "tower": (r"<think>big</think><answer>10^{{10^{{10^{{{n}}}}}}}</answer>", "{n}", None),
    "huge-power": (r"<think>big</think><answer>9^{{9^{{9}}}}+{n}</answer>", "{n}", None),
    "factorial": (r"<think>big</think><answer>(10^{{9}})!</answer>", "{n}", None),
    "nested-frac": (r"<think>deep</think><answer>" + NESTED.replace("{", "{{").replace("}", "}}") + "</answer>", "{n}",
                    None),
    "nested-sqrt": (r"<think>deep</think><answer>" + DEEP.replace("{", "{{").replace("}", "}}") + "</answer>", "{n}",
                    None),
    "braces": (r"<think>open</think>\boxed{{" + "{{" * 5000 + "{n}" + "}}" * 5000 + "}}", "{n}1", None),
    "unbalanced": (r"<think>open</think> so \boxed{{{n}", "{n}", None),
    "gold-nested": (r"<think>x</think><answer>{n}</answer>", NESTED.replace("{", "{{").replace("}", "}}"), None),
    "megabyte": (r"<think>long</think><answer>" + "9" * 1_000_000 + "</answer>", "{n}", 4),
    # math-verify would spend its own 5 s timeout on these: each may take the whole --timeout
    "sympy-expand": (r"<think>x</think><answer>(x+1)^{{2000}}</answer>", "(1+x)^{{1999}}", 4),
    "sympy-sum": (r"<think>x</think><answer>\sum_{{k=1}}^{{10^{{12}}}} k^{{k}}</answer>", "{n}", 4),
    "sympy-integral": (r"<think>x</think><answer>\int_0^1 e^{{x^{{x^{{x}}}}}} dx</answer>", "{n}", 4),
}
SLOW = {"code/infinite-loop", "code/sleep", "code/fork-bomb", "code/deep-recursion", "math/sympy-expand",
        "math/sympy-sum", "math/sympy-integral"}


def hostile_records(n: int, seed: int, outside: Path) -> list[dict]:
    """`n` records in a seeded order: the code kinds and the rare math kinds as counted above, the
    other math kinds sharing the rest evenly."""
    kinds = [("code", k) for k, (_, _, count) in CODE.items() for _ in range(count)]
    kinds += [("math", k) for k, (_, _, count) in MATH.items() if count for _ in range(count)]
    even = [k for k, (_, _, count) in MATH.items() if count is None]
    kinds += [("math", even[i % len(even)]) for i in range(n - len(kinds))]
    random.Random(seed).shuffle(kinds)
    records = []
    for i, (family, kind) in enumerate(kinds):
        if family == "code":
            completion, expected, _ = CODE[kind]
            if kind == "write-outside":
                completion = program(f"open({str(outside)!r}, 'w').write('x')\nprint('written')")
            fields = {"task": "code", "tests": [{"input": "1 2", "output": expected}]}
        else:
            completion, gold, _ = MATH[kind]
            completion, fields = completion.format(n=i + 2), {"task": "math", "answer": gold.format(n=i + 2)}
        records.append({"id": f"r{i}", "sample": 0, "kind": f"{family}/{kind}", "completion": completion, **fields})
    return records


# Runs the command as a child subreaper: processes orphaned below it are reparented here, not to
# init, so that none can escape the count. Prints the PIDs (and command lines) still alive.
REAPER = r"""
import ctypes, json, os, subprocess, sys, time
import psutil
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
code = subprocess.call(sys.argv[1:])
time.sleep(1.0)  # a killed sandbox's processes exit within milliseconds
left = []
for p in psutil.Process().children(recursive=True):
    try:
        if p.status() != psutil.STATUS_ZOMBIE:
            left.append((p.pid, " ".join(p.cmdline())))
            p.kill()
    except psutil.NoSuchProcess:
        pass
print(json.dumps({"code": code, "left": left}), file=sys.stderr)
"""


def test_a_thousand_hostile_records_are_all_scored_and_leave_nothing_behind(tmp_path: Path) -> None:
    outside = tmp_path / "pwned.txt"
    records = hostile_records(1000, seed=0, outside=outside)
    source = write_jsonl(tmp_path / "hostile.jsonl", records)
    out = tmp_path / "scored.jsonl"
    sandboxes = tmp_path / "sandboxes"  # TMPDIR of the command: every sandbox folder is made here
    sandboxes.mkdir()
    sandboxes.chmod(0o755)  # the sandbox may run under a fresh uid (as root)
    n_slow = sum(r["kind"] in SLOW for r in records)
    n_code = sum(r["task"] == "code" for r in records) - n_slow
    # A record that may hang costs --timeout on one of the workers. The others: a code record runs
    # its program twice (accuracy and code), two sandbox starts of ~0.1 s each, 0.6 s allowed on a
    # loaded machine; a math record ~5 ms, 0.05 s allowed. Plus 30 s for the command's start.
    budget = 30 + (n_slow * TIMEOUT + n_code * 0.6 + (len(records) - n_slow - n_code) * 0.05) / WORKERS
    args = [*R1, "score", str(source), "-r", "accuracy", "-r", "code", "--workers", str(WORKERS),
            "--timeout", str(TIMEOUT), "--reward-arg", f"code.timeout_s={CODE_TIMEOUT}", "-o", str(out)]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", REAPER, *args], check=False, capture_output=True, text=True, cwd=ROOT,
                          env=r1_env(TMPDIR=str(sandboxes)), timeout=budget + 60)
    elapsed = time.monotonic() - start
    report = json.loads(proc.stderr.splitlines()[-1])
    assert report["code"] == 0, proc.stderr[-3000:]
    assert elapsed < budget, f"{elapsed:.0f} s > budget {budget:.0f} s ({n_slow} records may hang)"
    assert report["left"] == [], report["left"]
    assert processes_with(str(sandboxes)) == []
    assert list(sandboxes.iterdir()) == []  # every sandbox folder removed
    assert not outside.exists()

    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in records]  # all there, in input order
    by_kind: dict[str, Counter] = {}
    for r in got:
        assert set(r["rewards"]) == {"accuracy", "code"}, r["kind"]
        by_kind.setdefault(r["kind"], Counter())[r["rewards"]["accuracy"]] += 1
        if r["kind"] in ("code/correct", "math/right"):
            assert r["rewards"]["accuracy"] == 1.0, r
        else:  # no attack got its expected output; no wrong answer was judged right
            assert r["rewards"]["accuracy"] in (0.0, None), (r["kind"], r["rewards"], r.get("score_error"))
    summary = proc.stderr.splitlines()[-2]
    assert summary.startswith("scored 1,000 completions"), proc.stderr[-2000:]
    print(f"\n{summary}; budget {budget:.0f} s, {n_slow} records that may hang; "
          + ", ".join(f"{k} {dict(c)}" for k, c in sorted(by_kind.items())), file=sys.__stderr__)
