r"""The task-aware `accuracy` reward: is the completion's final answer right?

The record's `task` picks the verifier (default `math`):

- `math`: the <answer> part, else the last \boxed{} (``templates.extract_final_answer``), judged
  equivalent to the gold `answer` by math-verify (``verify(parse(gold), parse(pred))``).
- `countdown`: the expression in <answer>/\boxed{} uses each of `numbers` once and equals `target`.
- `choice`: the chosen letter matches the gold letter.
- `code`: the completion's program passes the record's `tests` (delegated to the `code` reward).

Unparseable gold → None ("cannot be scored"); no extractable answer → 0.0.
"""

from __future__ import annotations

import functools
import math
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Literal

from r1cli.errors import BadInput, R1Error, UnknownReward
from r1cli.rewards import RewardFn, register
from r1cli.templates import extract_final_answer, strip_think

TASKS = ("math", "countdown", "choice", "code")
Fallback = Literal["none", "last-number"]

# math-verify's own limit per parse and per comparison (it arms signal.alarm with it).
TIMEOUT_S = 5
# A predicted answer this much longer than the gold (and over 1,000 characters), or with braces
# nested deeper than any real answer, is judged wrong unparsed: math-verify would spend its whole
# timeout on it (a 50-deep \frac: 5 s, and a False verdict anyway).
_MAX_PRED_CHARS = 1000
_MAX_PRED_RATIO = 10
_MAX_PRED_DEPTH = 20


def _needs(record: Mapping[str, Any]) -> tuple[str, ...]:
    task = record.get("task") or "math"
    return {"math": ("answer",), "choice": ("answer",), "countdown": ("numbers", "target"), "code": ("tests",)}.get(
        task, ()
    )


# ---- math: math-verify behind one timeout helper --------------------------------------------


@contextmanager
def math_verify_timeout(seconds: int = TIMEOUT_S) -> Iterator[int | None]:
    """The timeout to pass to math-verify's `parsing_timeout`/`timeout_seconds` here and now.

    math-verify enforces its timeouts with ``signal.alarm``, which only works in a process's
    main thread (a CLI process, or a process-pool worker). Elsewhere (a thread pool, a GRPO
    reward thread) this yields None: math-verify then runs without a timeout, and the caller's
    own per-record limit (a worker that is killed) must bound it.

    math-verify's alarm cancels any alarm already armed in the process (a per-record limit set
    with ``signal.alarm``/``setitimer``): the inner limit is capped by what is left of the
    outer one, and the outer timer is re-armed with its remaining time on exit.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield None
        return
    outer, _ = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    if outer > 0:
        seconds = max(1, min(seconds, math.ceil(outer)))
    try:
        yield seconds
    finally:
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


_MATH_DELIMITED = re.compile(r"\\boxed|(?<!\\)\$|\\\(|\\\[")
# Spellings math-verify 0.9 misreads: "1\,000" (thin-space digit groups) parses as 1*0,
# "42." as a bare string, "30°" not at all, \varnothing as a symbol named varnothing, and
# "1e3" as 1*e*3 (Euler's number).
_FIXES = (
    (re.compile(r"(?<=\d)\\[,!;: ](?=\d{3}(?!\d))"), ""),
    (re.compile(r"(?<=\d)\s*°"), r"^{\\circ}"),
    (re.compile(r"\\varnothing\b"), r"\\emptyset"),
    (re.compile(r"(?<![.\\])\.\s*$"), ""),
    (re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])"), r"\1\\times10^{\2}"),
)


def _latex(text: str) -> str:
    r"""`text` as math-verify input: bare answers ("033", "1/2", "5 cm", "x=3") are put in \boxed{}.

    >>> _latex("1\\,000."), _latex("The answer is $5$")
    ('\\boxed{1000}', 'The answer is $5$')
    """
    for pattern, replacement in _FIXES:
        text = pattern.sub(replacement, text)
    if _MATH_DELIMITED.search(text):
        return text
    return "\\boxed{" + text + "}"


def _brace_depth(text: str) -> int:
    depth = deepest = 0
    for c in text:
        if c == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "}":
            depth -= 1
    return deepest


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int = TIMEOUT_S) -> tuple[Any, ...] | None:
    from math_verify import parse

    with math_verify_timeout(timeout) as limit:
        parsed = parse(_latex(gold), parsing_timeout=limit)
    # math-verify falls back to the raw string when LaTeX parsing fails ("\frac{" → ["{\frac{"]):
    # a gold answer without any parsed expression cannot be judged.
    if not any(not isinstance(p, str) for p in parsed):
        return None
    return tuple(parsed)


@functools.lru_cache(maxsize=65536)
def math_equal(gold: str, pred: str, timeout: int = TIMEOUT_S) -> bool | None:
    r"""Whether `pred` is mathematically equivalent to `gold` (math-verify); None if `gold` does not parse.

    Both may be bare answers or LaTeX. `timeout` bounds each math-verify parse and comparison
    (seconds; see `math_verify_timeout`); a timeout is a False verdict. Verdicts are cached
    (65,536 entries): the samples of a GRPO group repeat the same answers.

    >>> math_equal("033", "33"), math_equal(r"\frac12", "0.5"), math_equal("1/2", "2")
    (True, True, False)
    >>> math_equal("", "3") is None
    True
    """
    from math_verify import parse, verify

    gold_parsed = _parse_gold(gold, timeout)
    if gold_parsed is None:
        return None
    if len(pred) > max(_MAX_PRED_CHARS, _MAX_PRED_RATIO * len(gold)) or _brace_depth(pred) > _MAX_PRED_DEPTH:
        return False
    with math_verify_timeout(timeout) as limit:
        pred_parsed = parse(_latex(pred), parsing_timeout=limit)
        if not pred_parsed:
            return False
        return bool(verify(list(gold_parsed), pred_parsed, timeout_seconds=limit))


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def last_number(text: str) -> str | None:
    """The last number in the text after the reasoning (commas dropped), or None.

    >>> last_number("<think>2+2=5?</think> So she has 1,234 apples.")
    '1234'
    """
    found = _NUMBER.findall(strip_think(text))
    return found[-1].replace(",", "") if found else None


# ---- countdown --------------------------------------------------------------------------------

_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("\\left", ""), ("\\right", ""), ("$", ""))


def countdown_expr(completion: str, target: Any = None) -> str | None:
    r"""The expression of a Countdown answer (<answer> else last \boxed{}), minus a trailing "= target".

    >>> countdown_expr(r"<answer>(19 + 36) \times 2 = 110</answer>", 110)
    '(19 + 36) * 2'
    """
    expr = extract_final_answer(completion)
    if expr is None:
        return None
    for latex, plain in _LATEX_OPS:
        expr = expr.replace(latex, plain)
    if target is not None and "=" in expr:
        left, _, right = expr.rpartition("=")
        if right.strip() == str(target).strip():
            expr = left
    return expr.strip() or None


def _countdown(completion: str, numbers: Any, target: Any) -> float | None:
    from r1cli.tasks.countdown import check

    if numbers is None or target is None:
        return None
    try:
        nums = [int(n) for n in numbers]
        goal = Fraction(str(target).strip())
    except (TypeError, ValueError):
        return None
    expr = countdown_expr(completion, target)
    if expr is None:
        return 0.0
    return 1.0 if check(expr, nums, goal) else 0.0


# ---- multiple choice --------------------------------------------------------------------------

_LETTER = re.compile(r"\(?\s*([A-Za-z])\s*\)?(?:[.:)]\s*.*)?", re.DOTALL)
_ANSWER_IS = re.compile(r"(?i:answer)\s*(?:is|:)\s*:?\s*\**\s*\(?([A-Z])\b")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def _letters(choices: Any) -> str:
    n = len(choices) if isinstance(choices, (list, tuple)) and choices else 10
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: min(n, 26)]


def choice_letter(text: str | None, choices: Any = None) -> str | None:
    r"""The letter a short answer names ("B", "(b)", "\text{(C)}", "D. 42"), or the letter of a choice's text.

    >>> choice_letter("(b)"), choice_letter(r"\text{C}"), choice_letter("7", ["5", "7"]), choice_letter("maybe")
    ('B', 'C', 'B', None)
    """
    if text is None:
        return None
    plain = _TEXT.sub(r"\1", text).replace("$", "").strip().strip("*").strip()
    m = _LETTER.fullmatch(plain)
    if m and m.group(1).upper() in _letters(choices):
        return m.group(1).upper()
    if isinstance(choices, (list, tuple)):
        for i, choice in enumerate(choices[:26]):
            if isinstance(choice, str) and choice.strip() and choice.strip().lower() == plain.lower():
                return _letters(choices)[i]
    return None


def chosen_letter(completion: str, choices: Any = None) -> str | None:
    r"""The letter a completion chooses: from <answer>/\boxed{}, else the last "answer is (X)".

    >>> chosen_letter("<think>hmm</think> The answer is (C).")
    'C'
    """
    letter = choice_letter(extract_final_answer(completion), choices)
    if letter is not None:
        return letter
    found = [m for m in _ANSWER_IS.findall(strip_think(completion)) if m in _letters(choices)]
    return found[-1] if found else None


# ---- the reward -------------------------------------------------------------------------------


def extract_pred(completion: str, record: Mapping[str, Any], fallback: Fallback = "none") -> str | None:
    """The final answer that `accuracy` judges for this record's task (None for `code` or when absent).

    >>> extract_pred(r"so \\boxed{12}", {"answer": "12"})
    '12'
    >>> extract_pred("it is 12", {}), extract_pred("it is 12", {}, fallback="last-number")
    (None, '12')
    """
    task = record.get("task") or "math"
    if task == "math":
        pred = extract_final_answer(completion)
        if pred is None and fallback == "last-number":
            pred = last_number(completion)
        return pred
    if task == "countdown":
        return countdown_expr(completion, record.get("target"))
    if task == "choice":
        return chosen_letter(completion, record.get("choices"))
    return None


def _code_reward() -> RewardFn:
    from r1cli import rewards

    try:
        return rewards.get_factory("code")()
    except UnknownReward:
        raise R1Error(
            "task 'code' needs the `code` reward (r1cli/rewards/code.py), which is not available",
            hint="score code records with a build of r1cli that ships the code sandbox",
        ) from None


@register("accuracy", needs=_needs)
def accuracy_reward(fallback: Fallback = "none", timeout: int = TIMEOUT_S) -> RewardFn:
    r"""1.0 if the completion's final answer is right for the record's `task`, 0.0 if not, None if unscorable.

    `fallback` ("none" | "last-number"): what a math completion without <answer> or \boxed{}
    is judged by; "last-number" takes the last number after the reasoning (GSM8K style).
    `timeout`: seconds per math-verify parse or comparison (math-verify's own default, 5);
    effective only in a process's main thread (see `math_verify_timeout`).

    >>> acc = accuracy_reward()
    >>> acc(r"<think>…</think><answer>\frac{1}{2}</answer>", answer="0.5")
    1.0
    >>> acc("no final answer", answer="3"), acc(r"\boxed{3}", answer=r"\frac{") is None
    (0.0, True)
    >>> acc("<answer>(55 - 36) * 2 = 38</answer>", task="countdown", numbers=[55, 36, 2], target=38)
    1.0
    """
    if fallback not in ("none", "last-number"):
        raise ValueError(f"fallback must be 'none' or 'last-number', got {fallback!r}")
    if timeout < 1:
        raise ValueError(f"timeout must be at least 1 second, got {timeout}")
    code: list[RewardFn] = []  # the code reward, built on first use

    def reward(
        completion: str,
        answer: Any = None,
        task: str | None = None,
        numbers: Any = None,
        target: Any = None,
        choices: Any = None,
        **record: Any,
    ) -> float | None:
        task = task or "math"
        if task == "math":
            if answer is None or not str(answer).strip():
                return None
            pred = extract_pred(completion, {"task": "math"}, fallback)
            gold = str(answer).strip()
            if _parse_gold(gold, timeout) is None:
                return None
            if pred is None:
                return 0.0
            verdict = math_equal(gold, pred, timeout)
            return None if verdict is None else float(verdict)
        if task == "countdown":
            return _countdown(completion, numbers, target)
        if task == "choice":
            gold = choice_letter(None if answer is None else str(answer), choices)
            if gold is None:
                return None
            return 1.0 if chosen_letter(completion, choices) == gold else 0.0
        if task == "code":
            if not code:
                code.append(_code_reward())
            fields = dict(answer=answer, task=task, numbers=numbers, target=target, choices=choices)
            return code[0](completion, **fields, **record)
        raise BadInput(f"unknown task '{task}'", hint=f"a record's task is one of: {', '.join(TASKS)}")

    def pred(completion: str, record: Mapping[str, Any]) -> str | None:
        return extract_pred(completion, record, fallback)

    reward.extract_pred = pred  # type: ignore[attr-defined]  # score_record sets the record's `pred`
    return reward
