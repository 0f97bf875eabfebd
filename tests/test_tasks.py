"""Built-in task generators: solvable, exact, deterministic; the Countdown evaluator is safe."""

from __future__ import annotations

import re
import time
from collections import Counter
from fractions import Fraction

import pytest

from r1cli import tasks
from r1cli.errors import R1Error
from r1cli.tasks import arithmetic, countdown
from r1cli.tasks.countdown import check, evaluate, numbers_used

_PLAIN = re.compile(r"[0-9+\-*/() ]+")


def reference_value(expr: str) -> Fraction:
    """An evaluation independent of r1cli: Python's own parser over Fraction literals.

    Only ever called on generated text that is digits, + - * /, parentheses and spaces.
    """
    assert _PLAIN.fullmatch(expr), expr
    return eval(re.sub(r"\d+", lambda m: f"F({m.group()})", expr), {"F": Fraction, "__builtins__": {}})


class ExactInt(int):
    """An int whose `/` fails unless the division is exact: checks every step a human would do."""

    def __add__(self, other: int) -> ExactInt:
        return ExactInt(int(self) + int(other))

    def __sub__(self, other: int) -> ExactInt:
        return ExactInt(int(self) - int(other))

    def __mul__(self, other: int) -> ExactInt:
        return ExactInt(int(self) * int(other))

    def __truediv__(self, other: int) -> ExactInt:
        assert int(other) != 0 and int(self) % int(other) == 0, f"{int(self)} / {int(other)} is not exact"
        return ExactInt(int(self) // int(other))


def stepwise_value(expr: str) -> int:
    assert _PLAIN.fullmatch(expr), expr
    return int(eval(re.sub(r"\d+", lambda m: f"E({m.group()})", expr), {"E": ExactInt, "__builtins__": {}}))


# ---- Countdown generation ---------------------------------------------------------------------


@pytest.mark.parametrize("num_numbers", [3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_every_countdown_instance_is_solved_by_its_answer(seed: int, num_numbers: int) -> None:
    records = list(countdown.generate(125, seed=seed, num_numbers=num_numbers))  # 16 × 125 = 2,000
    assert len(records) == 125
    for i, rec in enumerate(records):
        assert rec["id"] == f"countdown-{seed}-{i}"
        assert rec["task"] == "countdown"
        assert len(rec["numbers"]) == num_numbers
        assert all(1 <= x <= 99 for x in rec["numbers"])
        assert 1 <= rec["target"] <= 100
        assert check(rec["answer"], rec["numbers"], rec["target"]), rec
        # independently of r1cli's evaluator
        assert reference_value(rec["answer"]) == rec["target"]
        assert Counter(int(x) for x in re.findall(r"\d+", rec["answer"])) == Counter(rec["numbers"])
        assert str(rec["numbers"]) in rec["prompt"] and str(rec["target"]) in rec["prompt"]


def test_countdown_ranges_are_configurable() -> None:
    records = list(tasks.generate("countdown", 200, seed=3, num_numbers=3, max_number=12, max_target=20))
    assert all(max(r["numbers"]) <= 12 and r["target"] <= 20 for r in records)
    assert all(check(r["answer"], r["numbers"], r["target"]) for r in records)
    assert len({r["target"] for r in records}) > 10  # targets are spread, not one easy value


def _paren_pairs(text: str) -> list[tuple[int, int]]:
    stack, pairs = [], []
    for i, c in enumerate(text):
        if c == "(":
            stack.append(i)
        elif c == ")":
            pairs.append((stack.pop(), i))
    return pairs


def test_countdown_answers_use_minimal_parentheses() -> None:
    import ast

    for rec in countdown.generate(300, seed=4, num_numbers=5):
        text = rec["answer"]
        tree = ast.dump(ast.parse(text, mode="eval"))
        for i, j in _paren_pairs(text):  # every pair is needed: dropping it changes the parse
            dropped = text[:i] + text[i + 1 : j] + text[j + 1 :]
            assert ast.dump(ast.parse(dropped, mode="eval")) != tree, (text, dropped)


def test_unsatisfiable_countdown_settings_are_an_error() -> None:
    # 5, 5, 5 can make 2 ((5 + 5) / 5) but never 1 without a zero intermediate
    with pytest.raises(R1Error, match="no solvable Countdown instance"):
        list(countdown.generate(1, min_number=5, max_number=5, max_target=1, num_numbers=3))


# ---- Countdown evaluator ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2", Fraction(3)),
        ("(19 + 36) - 55 / 11", Fraction(50)),
        ("7 / 2", Fraction(7, 2)),
        ("2 * (3 + 4) - 5", Fraction(9)),
        ("8 - (3 + 2)", Fraction(3)),
        ("8 - 3 + 2", Fraction(7)),
        ("12 / (3 * 2)", Fraction(2)),
        ("((4))", Fraction(4)),
        ("6 × 7", Fraction(42)),
        ("9 ÷ 3", Fraction(3)),
        ("10 − 4", Fraction(6)),
        ("  3+4*2\t", Fraction(11)),
        ("1 - 5", Fraction(-4)),
        ("0", Fraction(0)),
    ],
)
def test_evaluate_is_exact(expr: str, value: Fraction) -> None:
    assert evaluate(expr) == value


HOSTILE = [
    ("__import__('os').system('echo hi')", "not allowed"),
    ("x + 1", "not allowed"),
    ("abs(3)", "not allowed"),
    ("(1).__class__", "not allowed"),
    ("().__class__.__bases__[0]", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("[1, 2]", "not allowed"),
    ("1, 2", "not allowed"),
    ("2 ** 10", r"\*\*"),
    ("9**9**9**9", r"\*\*"),
    ("10 ** 10 ** 10", r"\*\*"),
    ("7 // 2", "//"),
    ("1.5 + 2", "not allowed"),
    ("1e9", "not allowed"),
    ("0x10", "not allowed"),
    ("1_000", "not allowed"),
    ("-5 + 10", "unary"),
    ("+5", "unary"),
    ("3 - -2", "unary"),
    ("5 / (3 - 3)", "division by zero"),
    ("", "empty"),
    ("   ", "empty"),
    ("1 2", "not a valid expression"),
    ("(1 + 2", "not a valid expression"),
    ("007", "not a valid expression"),
    ("1 = 1", "not allowed"),
    ("1 + 2 # comment", "not allowed"),
    ("1\x00", "not allowed"),
    ("１２ + 1", "not allowed"),  # full-width digits
    ("1" * 10_000, "too long"),
    ("(" * 5_000 + "1" + ")" * 5_000, "too long"),
    ("(" * 300 + "1" + ")" * 300, "nested too deeply"),
    ("1+" * 499 + "1", "nested too deeply"),
    ("2*" * 499 + "2", "nested too deeply"),
    (None, "expected a string"),
]


@pytest.mark.parametrize(("expr", "reason"), HOSTILE)
def test_evaluate_rejects_hostile_input_quickly(expr: str, reason: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=reason):
        evaluate(expr)
    assert time.perf_counter() - start < 0.5  # milliseconds in practice; slack for a busy CI
    assert check(expr, [1, 2], 3) is False


def test_longest_allowed_literal_is_fine() -> None:
    assert evaluate("9" * 1000) == 10**1000 - 1


@pytest.mark.parametrize(
    ("expr", "numbers", "target", "ok"),
    [
        ("(19 + 36) - 55 / 11", [19, 36, 55, 11], 50, True),
        ("55 / 11 - 36 + 19 * 3", [19, 36, 55, 11], 26, False),  # 3 is not given
        ("(19 + 36) - 55 / 11", [11, 55, 36, 19], 50, True),  # order of numbers is free
        ("19 + 36 - 55", [19, 36, 55, 11], 0, False),  # 11 unused
        ("19 + 19", [19, 36], 38, False),  # 19 used twice
        ("4 + 4", [4, 4], 8, True),  # repeated numbers, each used once
        ("4 + 4 + 4", [4, 4], 12, False),
        ("6 / 4 * 2", [6, 4, 2], 3, True),  # fractional intermediates are fine
        ("6 × 7", [6, 7], 42, True),
        ("6 * 7", [6, 7], 43, False),
        ("-6 + 7", [6, 7], 1, False),
        ("6 * 7 = 42", [6, 7], 42, False),
        ("", [6, 7], 42, False),
    ],
)
def test_check(expr: str, numbers: list[int], target: int, ok: bool) -> None:
    assert check(expr, numbers, target) is ok


def test_numbers_used_in_order() -> None:
    assert numbers_used("(3 + 5) * 2 − 1") == [3, 5, 2, 1]
    with pytest.raises(ValueError):
        numbers_used("3 + y")


# ---- arithmetic ------------------------------------------------------------------------------


def _ops(prompt: str) -> int:
    return sum(prompt.count(op) for op in (" + ", " - ", " * ", " / "))


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_arithmetic_answers_are_exact(difficulty: int) -> None:
    records = list(arithmetic.generate(300, seed=difficulty, difficulty=difficulty))
    for i, rec in enumerate(records):
        assert rec["id"] == f"arithmetic-{difficulty}-{i}"
        assert (rec["task"], rec["difficulty"]) == ("math", difficulty)
        expr = rec["prompt"].removeprefix("Compute ").removesuffix(".")
        assert rec["prompt"] == f"Compute {expr}."
        value = reference_value(expr)
        assert value.denominator == 1 and rec["answer"] == str(value.numerator), rec
        assert stepwise_value(expr) == int(rec["answer"])  # every division, in order, is exact
        assert _ops(expr) == difficulty + 1
    assert any(int(r["answer"]) < 0 for r in records)


def test_difficulty_knob() -> None:
    def sample(d: int) -> list[str]:
        return [r["prompt"] for r in arithmetic.generate(200, seed=9, difficulty=d)]

    by_level = {d: sample(d) for d in range(1, 6)}
    ops = {d: {_ops(p) for p in prompts} for d, prompts in by_level.items()}
    assert ops == {1: {2}, 2: {3}, 3: {4}, 4: {5}, 5: {6}}
    assert not any("(" in p for p in by_level[1])
    assert all(any("(" in p for p in by_level[d]) for d in range(2, 6))
    biggest = {d: max(int(x) for p in prompts for x in re.findall(r"\d+", p)) for d, prompts in by_level.items()}
    assert biggest[1] < biggest[3] < biggest[5]
    assert any("/" in p for p in by_level[1])


# ---- registry and determinism --------------------------------------------------------------


@pytest.mark.parametrize(("task", "opts"), [("countdown", {"num_numbers": 5}), ("arithmetic", {"difficulty": 4})])
def test_same_seed_same_records_other_seed_other_records(task: str, opts: dict) -> None:
    first = list(tasks.generate(task, 50, seed=7, **opts))
    assert first == list(tasks.generate(task, 50, seed=7, **opts))
    assert list(tasks.generate(task, 20, seed=7, **opts)) == first[:20]  # a prefix of a longer run
    other = list(tasks.generate(task, 50, seed=8, **opts))
    assert [r["answer"] for r in other] != [r["answer"] for r in first]
    assert [r["prompt"] for r in other] != [r["prompt"] for r in first]
    assert len({r["id"] for r in first}) == 50


def test_generation_does_not_touch_the_global_rng() -> None:
    import random

    random.seed(1)
    expected = random.random()
    random.seed(1)
    list(tasks.generate("countdown", 20, seed=3))
    list(tasks.generate("arithmetic", 20, seed=3))
    assert random.random() == expected


@pytest.mark.parametrize(
    ("call", "message", "hint"),
    [
        (lambda: tasks.generate("sudoku", 3), "unknown task 'sudoku'", "countdown, arithmetic"),
        (lambda: tasks.generate("arithmetic", 3, difficulty=6), "difficulty must be between 1 and 5", None),
        (lambda: tasks.generate("arithmetic", 3, level=2), "unknown option for task 'arithmetic': level", "difficulty"),
        (lambda: tasks.generate("countdown", 3, num_numbers=7), "num_numbers must be between 3 and 6", None),
        (lambda: tasks.generate("countdown", 3, max_number=0), "min_number ≤ max_number", None),
        (lambda: tasks.generate("countdown", 3, max_target=0), "min_target ≤ max_target", None),
        (lambda: tasks.generate("countdown", -1), "≥ 0", None),
    ],
)
def test_bad_requests_fail_at_the_call_with_a_clear_error(call, message: str, hint: str | None) -> None:
    with pytest.raises(R1Error) as info:
        call()  # not only when iterated
    assert message in info.value.message
    if hint:
        assert hint in (info.value.hint or "")


def test_registry() -> None:
    assert set(tasks.TASKS) == {"countdown", "arithmetic"}
    assert tasks.options("countdown") == ["num_numbers", "min_number", "max_number", "min_target", "max_target"]
    assert list(tasks.generate("arithmetic", 0)) == []


def test_no_heavy_imports() -> None:
    import subprocess
    import sys

    code = "import sys, r1cli.tasks; print(any(m in sys.modules for m in ('torch', 'numpy', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
