"""Multi-step integer arithmetic with exact answers, in five difficulty levels.

Difficulty d uses d + 1 operations; operands and intermediate values grow with d, and
parentheses appear from difficulty 2. Division appears only where it is exact, so every answer
is an integer (negative answers happen). Each answer is checked with the safe evaluator of
`r1cli.tasks.countdown` before it is written.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from r1cli.errors import R1Error
from r1cli.tasks.countdown import Node, combine, evaluate, leaf


@dataclass(frozen=True)
class Level:
    ops: int  # operations per expression
    max_operand: int  # operands are drawn from 1..max_operand
    max_abs: int  # no intermediate value exceeds this in absolute value
    parens: bool  # whether the printed expression may contain parentheses


LEVELS = {
    1: Level(ops=2, max_operand=10, max_abs=100, parens=False),
    2: Level(ops=3, max_operand=20, max_abs=1_000, parens=True),
    3: Level(ops=4, max_operand=50, max_abs=10_000, parens=True),
    4: Level(ops=5, max_operand=100, max_abs=100_000, parens=True),
    5: Level(ops=6, max_operand=1_000, max_abs=1_000_000, parens=True),
}


def _divisors(value: int, limit: int) -> list[int]:
    """Divisors d of |value| with 2 ≤ d ≤ limit and d ≠ |value| (x / x is no exercise).

    >>> _divisors(-12, 5), _divisors(7, 10)
    ([2, 3, 4], [])
    """
    v = abs(value)
    return [d for d in range(2, min(v - 1, limit) + 1) if v % d == 0]


def _tree(ops: int, level: Level, rng: random.Random) -> Node | None:
    """A random expression with `ops` operations, or None when a value leaves the level's range."""
    if ops == 0:
        return leaf(rng.randint(1, level.max_operand))
    left_ops = rng.randint(0, ops - 1)
    right_ops = ops - 1 - left_ops
    op = rng.choice("+-*/")
    left = _tree(left_ops, level, rng)
    if left is None:
        return None
    if op == "/":
        # Exact division: a right operand that divides the left value (a leaf chosen among its
        # divisors), or a dividend built as divisor × quotient when the left side is a leaf.
        if right_ops == 0:
            divisors = _divisors(left.value, level.max_operand)
            if divisors:
                node = combine("/", left, leaf(rng.choice(divisors)))
                return node if abs(node.value) <= level.max_abs else None
        right = _tree(right_ops, level, rng)
        if right is None:
            return None
        if left_ops == 0 and abs(right.value) >= 2:
            quotient = rng.randint(2, max(2, level.max_operand // abs(right.value)))
            left = leaf(abs(right.value) * quotient)
        if right.value != 0 and abs(right.value) >= 2 and left.value % right.value == 0:
            return combine("/", left, right)
        op = rng.choice("+-*")
    else:
        right = _tree(right_ops, level, rng)
        if right is None:
            return None
    node = combine(op, left, right)
    return node if abs(node.value) <= level.max_abs else None


def expression(difficulty: int, rng: random.Random) -> str:
    """One random expression at `difficulty` (1..5) whose exact value is an integer.

    >>> text = expression(3, random.Random(0))
    >>> sum(text.count(op) for op in (" + ", " - ", " * ", " / "))
    4
    """
    level = LEVELS[difficulty]
    while True:
        node = _tree(level.ops, level, rng)
        if node is None or (not level.parens and "(" in node.text):
            continue
        return node.text


def generate(n: int, *, seed: int = 0, difficulty: int = 2) -> Iterator[dict[str, Any]]:
    """`n` arithmetic prompt records at `difficulty` (1..5), deterministic for `seed`.

    Keys: id (arithmetic-SEED-INDEX), prompt, answer (the integer as a string), task ("math"),
    difficulty.

    >>> rec = next(generate(1, seed=0, difficulty=1))
    >>> rec["prompt"].startswith("Compute "), rec["task"], int(rec["answer"]) == evaluate(rec["prompt"][8:-1])
    (True, 'math', True)
    """
    if n < 0:
        raise R1Error(f"number of tasks must be ≥ 0, got {n}")
    if difficulty not in LEVELS:
        raise R1Error(f"difficulty must be between 1 and {max(LEVELS)}, got {difficulty}")
    return _generate(n, seed, difficulty)


def _generate(n: int, seed: int, difficulty: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for index in range(n):
        text = expression(difficulty, rng)
        value = evaluate(text)
        if value.denominator != 1:  # cannot happen: every division is exact by construction
            raise AssertionError(f"inexact arithmetic task {text!r} = {value}")
        yield {
            "id": f"arithmetic-{seed}-{index}",
            "prompt": f"Compute {text}.",
            "answer": str(value.numerator),
            "task": "math",
            "difficulty": difficulty,
        }
