"""Length rewards (`length`): the cosine-scaled reward, or DAPO's soft overlong punishment.

A completion's length is its `completion_tokens` when the record has it (rollout records do),
else its character count / 4 (about 4 characters per token for English text with BPE
tokenizers; a rough figure for code and CJK text).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from r1cli.rewards import RewardFn, register

Kind = Literal["cosine", "overlong"]


def completion_length(completion: str, completion_tokens: Any = None) -> float:
    """`completion_tokens` if it is a number, else ``len(completion) / 4``.

    >>> completion_length("abcdefgh"), completion_length("abcdefgh", 17)
    (2.0, 17.0)
    """
    if isinstance(completion_tokens, (int, float)) and not isinstance(completion_tokens, bool):
        return float(completion_tokens)
    return len(completion) / 4


def cosine_scaled(length: float, correct: bool, *, min_value_wrong: float, max_value_wrong: float,
                  min_value_correct: float, max_value_correct: float, max_len: int) -> float:
    """Cosine interpolation from the value at length 0 to the value at `max_len` (clamped beyond).

    Correct: max_value_correct at 0 down to min_value_correct at max_len (short and right is
    best). Wrong: min_value_wrong at 0 up to max_value_wrong at max_len (a long try is punished
    less than a short wrong guess).

    >>> kw = dict(min_value_wrong=-1.0, max_value_wrong=-0.5, min_value_correct=0.5, max_value_correct=1.0,
    ...           max_len=1000)
    >>> cosine_scaled(0, True, **kw), cosine_scaled(1000, True, **kw), cosine_scaled(500, True, **kw)
    (1.0, 0.5, 0.75)
    >>> cosine_scaled(0, False, **kw), cosine_scaled(5000, False, **kw)
    (-1.0, -0.5)
    """
    progress = min(max(length / max_len, 0.0), 1.0)
    cosine = math.cos(progress * math.pi)
    if correct:
        start, end = max_value_correct, min_value_correct
    else:
        start, end = min_value_wrong, max_value_wrong
    return end + 0.5 * (start - end) * (1.0 + cosine)


def overlong_punishment(length: float, max_len: int, cache: int) -> float:
    """DAPO's soft overlong punishment (Eq. 13): 0 up to max_len - cache, linear to -1 at max_len, -1 beyond.

    >>> [overlong_punishment(n, 1024, 256) for n in (100, 768, 896, 1024, 2000)]
    [0.0, 0.0, -0.5, -1.0, -1.0]
    """
    if length <= max_len - cache:
        return 0.0
    if length <= max_len:
        return (max_len - cache - length) / cache
    return -1.0


@register("length", summary="Length shaping: cosine-scaled by correctness (kind=cosine) or DAPO's overlong penalty.")
def length_reward(
    kind: Kind = "cosine",
    max_len: int = 1000,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    cache: int = 256,
) -> RewardFn:
    """Reward or punish completion length (in tokens; see the module docstring).

    ``kind="cosine"``: the cosine-scaled reward of Yeo et al. 2025, "Demystifying Long
    Chain-of-Thought Reasoning in LLMs" (open-r1's `get_cosine_scaled_reward`, whose defaults
    these are; open-r1 measures characters, this measures tokens). Correctness is the
    `accuracy` reward on the same record; an unscorable record (accuracy None) scores None.
    ``kind="overlong"``: DAPO's soft overlong punishment (Yu et al. 2025, "DAPO", Eq. 13; open-r1's
    `get_soft_overlong_punishment`) with `max_len` and `cache` (the punishment interval);
    DAPO used max_len 20480 and cache 4096. Both kinds share `max_len` (tokens), default 1000:
    open-r1's cosine default (its overlong default is 1024).

    >>> length_reward()("<answer>4</answer>", answer="4", completion_tokens=0)
    1.0
    >>> length_reward(kind="overlong", max_len=1024)("x", completion_tokens=1024)
    -1.0
    """
    if kind not in ("cosine", "overlong"):
        raise ValueError(f"kind must be 'cosine' or 'overlong', got {kind!r}")
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if kind == "overlong" and not 0 < cache <= max_len:
        raise ValueError(f"cache must be in 1..max_len ({max_len}), got {cache}")

    if kind == "overlong":

        def overlong(completion: str, completion_tokens: Any = None, **_: Any) -> float:
            return overlong_punishment(completion_length(completion, completion_tokens), max_len, cache)

        return overlong

    from r1cli.rewards.accuracy import accuracy_reward

    accuracy = accuracy_reward()
    values = dict(min_value_wrong=min_value_wrong, max_value_wrong=max_value_wrong,
                  min_value_correct=min_value_correct, max_value_correct=max_value_correct, max_len=max_len)

    def cosine(completion: str, completion_tokens: Any = None, **record: Any) -> float | None:
        correct = accuracy(completion, **record)
        if correct is None:
            return None
        return cosine_scaled(completion_length(completion, completion_tokens), correct >= 1.0, **values)

    return cosine
