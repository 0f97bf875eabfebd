"""The `code` reward: run the completion's program against the record's stdin/stdout tests.

The program is the last ```python fenced block of the answer, the text after the reasoning
(after the last "</think>" when there is one); a completion with no such block scores 0.0. The
program runs in `r1cli.sandbox` (no network, no user files, time, memory and process limits),
once per test, and the reward is the fraction of tests passed (or all-or-nothing with
`binary`), as in the code-RL setups that followed DeepSeek-R1 (DeepCoder, open-r1's
`code_reward`). Records whose `tests` are missing or malformed score None.
"""

from __future__ import annotations

import re
from typing import Any

from r1cli.rewards import RewardFn, register

# An opening fence at the start of a line (its language tag, the rest of the line ignored),
# the body, then a closing fence at the start of a line.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = ("python", "python3", "py")


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
    blocks = _FENCE.findall(text)
    tagged = [body for tag, body in blocks if tag.lower() in _PYTHON_TAGS]
    untagged = [body for tag, body in blocks if not tag]
    chosen = tagged or untagged
    return chosen[-1] if chosen and chosen[-1].strip() else None


@register("code", needs=("tests",),
          summary="fraction of the record's stdin/stdout `tests` that the last ```python block passes, run in a sandbox")
def code_reward(timeout_s: float = 5.0, memory_mb: int = 512, binary: bool = False) -> RewardFn:
    """Fraction of the record's stdin/stdout tests passed by the completion's program (1.0/0.0 if `binary`).

    `timeout_s` is the wall-clock and CPU limit per test, `memory_mb` the address-space limit.
    `tests` is a list of {"input", "output"}, an APPS-style {"inputs": [...], "outputs": [...]},
    or either one as a JSON string. Output matches ignoring trailing whitespace per line.

    >>> fn = code_reward(timeout_s=2)
    >>> fn("```python\\nprint(int(input()) + 1)\\n```", tests=[{"input": "1", "output": "2"}, {"input": "2", "output": "4"}])
    0.5
    >>> fn("no program", tests=[{"input": "1", "output": "2"}]), fn("```python\\npass\\n```", tests=[]) is None
    (0.0, True)
    """
    from r1cli.sandbox import Limits

    limits = Limits(timeout_s=timeout_s, cpu_s=timeout_s, memory_mb=memory_mb)  # ValueError: a bad parameter

    def reward(completion: str, *, tests: Any = None, **_: Any) -> float | None:
        from r1cli.sandbox import normalize_tests, run_tests

        pairs = normalize_tests(tests)
        if pairs is None:
            return None
        program = extract_code(completion)
        if program is None:
            return 0.0
        return run_tests(program, [{"input": i, "output": o} for i, o in pairs], limits=limits, binary=binary)

    return reward
