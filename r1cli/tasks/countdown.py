"""Countdown: combine the given numbers with + - * / to reach a target (the TinyZero task).

Every generated instance is solvable: it is built from a random expression tree over all the
numbers in which every intermediate value is a positive integer (exact division only), and the
record's `answer` is that expression. `evaluate`, `numbers_used` and `check` are the safe
verifier the countdown reward uses: an AST walker that accepts integer literals, + - * / and
parentheses only, and never calls eval().
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from r1cli.errors import R1Error

MAX_CHARS = 1000
# Parenthesis nesting and tree depth a legitimate answer never needs (6 numbers → depth ≤ 5);
# the caps keep hostile input far from CPython's own limits (200 nested parentheses).
MAX_PAREN_DEPTH = 50
MAX_TREE_DEPTH = 64

_ALIASES = str.maketrans({"×": "*", "÷": "/", "−": "-"})
_ALLOWED = re.compile(r"[0-9+\-*/()\s]*")
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


# ---- safe evaluation ----------------------------------------------------------------------


def _parse(expr: str) -> ast.expr:
    """Validate `expr` cheaply, then parse it; ValueError with a reason on anything not allowed."""
    if not isinstance(expr, str):
        raise ValueError(f"expected a string, got {type(expr).__name__}")
    if len(expr) > MAX_CHARS:
        raise ValueError(f"expression too long ({len(expr):,} characters, at most {MAX_CHARS:,})")
    text = expr.translate(_ALIASES).strip()
    if not text:
        raise ValueError("empty expression")
    if _ALLOWED.fullmatch(text) is None:
        char = next(c for c in text if not _ALLOWED.fullmatch(c))
        raise ValueError(f"character {char!r} not allowed: use integers, + - * / and parentheses")
    if "**" in text or "//" in text:
        raise ValueError("only + - * / are allowed (no ** or //)")
    depth = deepest = 0
    for c in text:
        if c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
    if deepest > MAX_PAREN_DEPTH:
        raise ValueError(f"parentheses nested too deeply ({deepest} levels, at most {MAX_PAREN_DEPTH})")
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not a valid expression: {expr!r}") from exc


def _walk(node: ast.expr, depth: int, leaves: list[int]) -> Fraction:
    if depth > MAX_TREE_DEPTH:
        raise ValueError(f"expression nested too deeply (more than {MAX_TREE_DEPTH} levels)")
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:
            raise ValueError(f"only integer literals are allowed, got {node.value!r}")
        leaves.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _walk(node.left, depth + 1, leaves)
        right = _walk(node.right, depth + 1, leaves)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise ValueError("division by zero")
        return left / right
    if isinstance(node, ast.UnaryOp):
        raise ValueError("unary operators (like -5) are not allowed in Countdown")
    raise ValueError(f"{type(node).__name__} not allowed: use integers, + - * / and parentheses")


def _evaluate(expr: str) -> tuple[Fraction, list[int]]:
    leaves: list[int] = []
    return _walk(_parse(expr), 0, leaves), leaves


def evaluate(expr: str) -> Fraction:
    """The exact value of an arithmetic expression over integer literals with + - * / and ().

    '×', '÷' and '−' are read as '*', '/' and '-'. Raises ValueError, with the reason, on
    anything else: names, calls, **, //, floats, unary minus, division by zero, more than 1,000
    characters, or deep nesting.

    >>> evaluate("(19 + 36) - 55 / 11")
    Fraction(50, 1)
    >>> evaluate("7 ÷ 2")
    Fraction(7, 2)
    >>> evaluate("__import__('os')")
    Traceback (most recent call last):
    ...
    ValueError: character '_' not allowed: use integers, + - * / and parentheses
    """
    return _evaluate(expr)[0]


def numbers_used(expr: str) -> list[int]:
    """The integer literals of `expr`, left to right (ValueError if `expr` is not allowed).

    >>> numbers_used("(19 + 36) - 55 / 11")
    [19, 36, 55, 11]
    """
    return _evaluate(expr)[1]


def check(expr: str, numbers: list[int], target: int) -> bool:
    """True when `expr` uses each of `numbers` exactly once (as a multiset) and equals `target`.

    >>> check("(19 + 36) - 55 / 11", [55, 36, 19, 11], 50)
    True
    >>> check("19 + 36 - 55", [55, 36, 19, 11], 0)
    False
    >>> check("50", [55, 36, 19, 11], 50)
    False
    """
    try:
        value, leaves = _evaluate(expr)
    except ValueError:
        return False
    return sorted(leaves) == sorted(int(n) for n in numbers) and value == target


# ---- generation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """An expression being built: its exact value and its text with minimal parentheses."""

    value: int
    text: str
    prec: int  # 3 for a literal, 2 for * /, 1 for + -


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def combine(op: str, left: Node, right: Node) -> Node:
    """Join two nodes with `op`, adding parentheses only where precedence needs them.

    A right operand of - or / at the same precedence keeps its parentheses: 8 - (3 + 2).
    Values are computed exactly; callers check that divisions are exact.
    """
    prec = _PREC[op]
    lt = f"({left.text})" if left.prec < prec else left.text
    rt = f"({right.text})" if right.prec < prec or (right.prec == prec and op in "-/") else right.text
    a, b = left.value, right.value
    value = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a // b
    return Node(value, f"{lt} {op} {rt}", prec)


def leaf(value: int) -> Node:
    return Node(value, str(value), 3)


def _random_solution(numbers: list[int], rng: random.Random) -> Node:
    """A random expression over all `numbers` whose intermediate values are positive integers."""
    pool = [leaf(n) for n in numbers]
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        a, b = pool[i], pool[j]
        big, small = (a, b) if a.value >= b.value else (b, a)
        ops = ["+", "*"]
        if big.value != small.value:
            ops.append("-")
        if big.value % small.value == 0:
            ops.append("/")
        op = rng.choice(ops)
        if op in "+*" and rng.random() < 0.5:
            node = combine(op, small, big)
        else:
            node = combine(op, big, small)
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [node]
    return pool[0]


def prompt_text(numbers: list[int], target: int) -> str:
    """The instruction for one instance (the example answer is TinyZero's).

    >>> prompt_text([3, 5, 2], 16)
    'Using the numbers [3, 5, 2], each exactly once, and the operations +, -, *, / with parentheses, write an expression that equals 16. The final answer must be the expression only, for example (1 + 2) / 3.'
    """
    return (
        f"Using the numbers {list(numbers)}, each exactly once, and the operations +, -, *, / with "
        f"parentheses, write an expression that equals {target}. "
        "The final answer must be the expression only, for example (1 + 2) / 3."
    )


def generate(
    n: int,
    *,
    seed: int = 0,
    num_numbers: int = 4,
    min_number: int = 1,
    max_number: int = 99,
    min_target: int = 1,
    max_target: int = 100,
) -> Iterator[dict[str, Any]]:
    """`n` solvable Countdown prompt records, deterministic for `seed`.

    Keys: id (countdown-SEED-INDEX), prompt, answer (a valid expression), task, numbers, target.

    >>> rec = next(generate(1, seed=7))
    >>> check(rec["answer"], rec["numbers"], rec["target"])
    True
    """
    if n < 0:
        raise R1Error(f"number of tasks must be ≥ 0, got {n}")
    if not 3 <= num_numbers <= 6:
        raise R1Error(f"num_numbers must be between 3 and 6, got {num_numbers}")
    if not 1 <= min_number <= max_number:
        raise R1Error(f"need 1 ≤ min_number ≤ max_number, got {min_number} and {max_number}")
    if not 1 <= min_target <= max_target:
        raise R1Error(f"need 1 ≤ min_target ≤ max_target, got {min_target} and {max_target}")
    return _generate(n, seed, num_numbers, min_number, max_number, min_target, max_target)


# Random trees tried per number set, and number sets tried per instance, before giving up.
_TREES_PER_SET = 50
_SETS_PER_INSTANCE = 2000


def _generate(
    n: int, seed: int, k: int, min_number: int, max_number: int, min_target: int, max_target: int
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for index in range(n):
        for _ in range(_SETS_PER_INSTANCE):
            numbers = [rng.randint(min_number, max_number) for _ in range(k)]
            for _ in range(_TREES_PER_SET):
                node = _random_solution(numbers, rng)
                if min_target <= node.value <= max_target:
                    break
            else:
                continue
            break
        else:
            raise R1Error(
                f"no solvable Countdown instance found with {k} numbers in {min_number}..{max_number} "
                f"and a target in {min_target}..{max_target}",
                hint="widen the target range (--max-target) or change --max-number",
            )
        yield {
            "id": f"countdown-{seed}-{index}",
            "prompt": prompt_text(numbers, node.value),
            "answer": node.text,
            "task": "countdown",
            "numbers": numbers,
            "target": node.value,
        }
