"""The `code` reward: run the completion's program against the record's stdin/stdout tests.

The program is the last ```python fenced block of the answer, the text after the reasoning
(after the last "</think>" when there is one); a completion with no such block scores 0.0. The
program runs in `r1cli.sandbox` (namespaces, seccomp, a cgroup, rlimits: docs/sandbox.md), once
per test, and the reward is the fraction of tests passed (or all-or-nothing with `binary`), as
in the code-RL setups that followed DeepSeek-R1 (DeepCoder, open-r1's `code_reward`). Records
whose `tests` are missing or malformed score None.

Where the namespace sandbox cannot be built (a container without CAP_SYS_ADMIN, user namespaces
turned off), building the reward fails with the missing mechanism and how to get it, unless the
run opts in (`allow_unconfined=true`, or R1_ALLOW_UNCONFINED_CODE=1) to the weaker sandbox.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from r1cli.rewards import RewardFn, register

_PYTHON_TAGS = ("python", "python3", "py")
ENV_OPT_IN = "R1_ALLOW_UNCONFINED_CODE"


class Verdict(float):
    """A code reward value that says more: `why` (the limit a program hit; the record's `score_error`)
    and `sandbox` (the isolation that ran it; the record's `sandbox`). A float to every other caller.

    >>> v = Verdict(0.0, "test 1: time limit (5 s)", sandbox="namespaces+seccomp+cgroup")
    >>> v == 0.0, v.why, v.sandbox
    (True, 'test 1: time limit (5 s)', 'namespaces+seccomp+cgroup')
    """

    why: str | None
    sandbox: str | None

    def __new__(cls, value: float, why: str | None = None, *, sandbox: str | None = None) -> Verdict:
        self = super().__new__(cls, value)
        self.why, self.sandbox = why, sandbox
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across the scoring pool's processes
        return _verdict, (float(self), self.why, self.sandbox)


def _verdict(value: float, why: str | None, sandbox: str | None) -> Verdict:
    return Verdict(value, why, sandbox=sandbox)


# A fence line: ``` at the start of a line after blanks, and its language tag. Every part is a
# greedy run that nothing after it can make give back, so a match costs its own length.
_FENCE_LINE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)", re.MULTILINE)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of every fenced block: fence lines pair up in order, an opening with the next fence line.

    One pass: fence lines are found with a regex that cannot backtrack, bodies are slices. (A
    single regex with a lazy body backtracked quadratically on an unclosed fence: 300 KB of
    "```aaaa…" took 33 s; 1 MB now takes milliseconds.)

    >>> fenced_blocks("```py\\nA\\n```\\ntext\\n  ```\\nB\\n```  \\n```c")
    [('py', 'A\\n'), ('', 'B\\n')]
    """
    blocks, tag, body_start = [], "", -1
    for m in _FENCE_LINE.finditer(text):
        if body_start < 0:  # an opening fence; its body starts after its newline
            newline = text.find("\n", m.end())
            if newline < 0:
                break
            tag, body_start = m.group(1), newline + 1
        elif m.start() >= body_start:
            blocks.append((tag, text[body_start : m.start()]))
            body_start = -1
    return blocks


def extract_code(completion: str) -> str | None:
    """The program in a completion: its last ```python block (else its last untagged ``` block), or None.

    Only the text after the last "</think>" counts when the completion has one, so code
    sketched while reasoning is not run. Blocks tagged with another language (```text
    for a sample output, ```bash) are skipped.

    >>> extract_code("<think>```python\\nprint(0)\\n```</think> Code:\\n```python\\nprint(1)\\n```\\n```text\\n1\\n```")
    'print(1)\\n'
    >>> extract_code("```\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_code("no code here") is None, extract_code("```python\\nprint(3)") is None
    (True, True)
    """
    text = completion.rsplit("</think>", 1)[1] if "</think>" in completion else completion
    blocks = fenced_blocks(text)
    tagged = [body for tag, body in blocks if tag.lower() in _PYTHON_TAGS]
    untagged = [body for tag, body in blocks if not tag]
    chosen = tagged or untagged
    return chosen[-1] if chosen and chosen[-1].strip() else None


@functools.lru_cache(maxsize=4)
def _isolation(limits: Any) -> str:
    """The isolation this host gives programs under `limits` (SandboxUnavailable when it refuses)."""
    from r1cli.sandbox import run_python

    result = run_python("pass", limits=limits)
    return result.isolation or f"sandbox error: {result.stderr.strip()[-200:]}"


@register("code", needs=("tests",),
          summary="fraction of the record's stdin/stdout `tests` that the last ```python block passes, run in a sandbox")
def code_reward(timeout_s: float = 5.0, memory_mb: int = 512, binary: bool = False,
                allow_unconfined: bool = False) -> RewardFn:
    """Fraction of the record's stdin/stdout tests passed by the completion's program (1.0/0.0 if `binary`).

    `timeout_s` is the wall-clock and CPU limit per test, `memory_mb` the memory of the whole
    sandbox (its cgroup; RLIMIT_AS per process). `tests` is a list of {"input", "output"}, an
    APPS-style {"inputs": [...], "outputs": [...]}, or either one as a JSON string. Output
    matches ignoring trailing whitespace per line. `allow_unconfined` (or the environment
    variable R1_ALLOW_UNCONFINED_CODE=1) runs programs where the namespace sandbox cannot be
    built, under the weaker one; the reward's `warning` then says so.

    The values are `Verdict`s: `sandbox` names the isolation, `why` the limit a program hit
    (it still scores 0 for that test). `budget_s` / `budget_for(record)`: the most wall seconds
    one record may take.

    >>> fn = code_reward(timeout_s=2)
    >>> fn("```python\\nprint(int(input()) + 1)\\n```", tests=[{"input": "1", "output": "2"}, {"input": "2", "output": "4"}])
    0.5
    >>> fn("no program", tests=[{"input": "1", "output": "2"}]), fn("```python\\npass\\n```", tests=[]) is None
    (0.0, True)
    """
    from r1cli.sandbox import Limits, budget_s, grade, normalize_tests

    opted_in = allow_unconfined or os.environ.get(ENV_OPT_IN, "").strip().lower() in ("1", "true", "yes", "on")
    limits = Limits(timeout_s=timeout_s, cpu_s=timeout_s, memory_mb=memory_mb,  # ValueError: a bad parameter
                    allow_unconfined=opted_in)
    isolation = _isolation(limits)  # SandboxUnavailable (an R1Error: exit 1) where it refuses

    def reward(completion: str, *, tests: Any = None, **_: Any) -> float | None:
        pairs = normalize_tests(tests)
        if pairs is None:
            return None
        program = extract_code(completion)
        if program is None:
            return 0.0
        verdict = grade(program, [{"input": i, "output": o} for i, o in pairs], limits=limits, binary=binary)
        if verdict.score is None:
            return None
        return Verdict(verdict.score, verdict.note, sandbox=verdict.isolation)

    def budget_for(record: Any) -> float:
        pairs = normalize_tests(record.get("tests")) if hasattr(record, "get") else None
        return budget_s(limits, len(pairs) if pairs else 1) + 1.0  # + 1 s: clean-up, cgroup removal

    reward.budget_s = budget_for({})  # one test; `budget_for` counts a record's tests
    reward.budget_for = budget_for
    reward.isolation = isolation
    reward.warning = None if not isolation.startswith("unconfined") else (
        f"the code reward runs untrusted programs WITHOUT the namespace sandbox ({isolation}), as opted in; "
        + ("they can read every file readable by all users, r1's input included if it is (no Landlock here)"
           if "no-landlock" in isolation else "they can still see which files exist (stat), not read them")
        + "; see docs/sandbox.md")
    return reward
