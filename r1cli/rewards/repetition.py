"""The n-gram repetition penalty (`repetition`)."""

from __future__ import annotations

from typing import Any

from r1cli.rewards import RewardFn, register


def repetition_penalty(text: str, ngram_size: int = 3, max_penalty: float = -1.0) -> float:
    """``(1 - distinct n-grams / n-grams) * max_penalty`` over lower-cased whitespace words.

    Texts with fewer than `ngram_size` words score 0.0.

    >>> repetition_penalty("the cat sat on the mat")
    0.0
    >>> repetition_penalty("go go go go go go")
    -0.75
    """
    words = text.lower().split()
    if len(words) < ngram_size:
        return 0.0
    ngrams = list(zip(*(words[i:] for i in range(ngram_size))))
    return (1.0 - len(set(ngrams)) / len(ngrams)) * max_penalty + 0.0  # + 0.0: no -0.0


@register("repetition")
def repetition_reward(ngram_size: int = 3, max_penalty: float = -1.0) -> RewardFn:
    """Penalise repeated word n-grams in the whole completion: 0.0 (none repeated) down to `max_penalty`.

    Follows open-r1's `get_repetition_penalty_reward` (Yeo et al. 2025, "Demystifying Long
    Chain-of-Thought Reasoning in LLMs"), with its defaults ngram_size=3, max_penalty=-1.0.
    Words are split on whitespace, so unsegmented Chinese text counts as few long "words".

    >>> rep = repetition_reward()
    >>> rep("a b c a b c a b c"), rep(""), rep("too short")
    (-0.5714285714285714, 0.0, 0.0)
    """
    if ngram_size < 1:
        raise ValueError(f"ngram_size must be at least 1, got {ngram_size}")
    if max_penalty > 0:
        raise ValueError(f"max_penalty must be 0 or negative, got {max_penalty}")

    def reward(completion: str, **_: Any) -> float:
        return repetition_penalty(completion, ngram_size, max_penalty)

    return reward
