r"""The task-aware `accuracy` reward: is the completion's final answer right?

The record's `task` picks the verifier (default `math`):

- `math`: the <answer> part, else the last \boxed{} (``templates.extract_final_answer``), judged
  equivalent to the gold `answer` by math-verify (``verify(parse(gold), parse(pred))``); integer
  and fraction literals are compared exactly, and answers that math-verify could not judge within
  its timeout (a power tower, a 50-deep \frac) as text (`math_equal`).
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
from r1cli.templates import extract_final_answer, last_boxed, strip_think

TASKS = ("math", "countdown", "choice", "code")
Fallback = Literal["none", "last-number"]

# math-verify's own limit per parse and per comparison (it arms signal.alarm with it).
TIMEOUT_S = 5
# A predicted answer this much longer than the gold (and over 1,000 characters) is judged wrong
# unparsed: math-verify would spend its whole timeout on it, for a False verdict anyway.
_MAX_PRED_CHARS = 1000
_MAX_PRED_RATIO = 10
# Answers that math-verify cannot judge within its timeout are judged as text instead (see
# `judged_as_text`): more braces nested than this, or a number of more digits than this.
_MAX_DEPTH = 10
_MAX_DIGITS = 10**6


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


# ---- answers judged as text -------------------------------------------------------------------
# sympy evaluates powers and factorials of integers exactly (in C, where no alarm interrupts it),
# and math-verify compares an unevaluated nested fraction in time exponential in its depth.
# Measured with math-verify 0.9, against a gold of 12: 10^{10^6} 0.17 s, 10^{10^7} 5 s (the
# timeout); 2^{2^{2^{2^2}}} (19,729 digits) 0.3 s; 100000! 0.1 s, 1000000! 4.8 s;
# \frac{\frac{…}{2}}{2} 10 deep 0.3 s, 15 deep 1.8 s, 18 deep 5 s (as a gold: for every prediction).

_SPACING = re.compile(r"\s+|\\[,;:! ]|\\(?:left|right)(?![A-Za-z])|\$")
_LITERAL = re.compile(r"(?:\d|\.|[-+*/^!(){}\[\]]|\\cdot|\\times)*")
_TOKEN = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\cdot|\\times|[-+*/^!(){}\[\]]")
_OPEN, _CLOSE = "({[", ")}]"


class _TooBig(Exception):
    """An expression writes a number of more than `_MAX_DIGITS` digits."""


def _size(tokens: list[str], budget: list[float]) -> tuple[int | None, float]:
    r"""(sign -1/0/1/None, log10 |value|: exact but through sums) of literal numbers, + - * / \cdot \times ^ ! ().

    Each power and factorial spends the digits of its exact value from `budget` (_TooBig when it
    runs out); ValueError for other tokens. As in LaTeX, `^` takes a {group} or a single digit.
    """
    pos = 0

    def peek(*options: str) -> bool:
        return pos < len(tokens) and tokens[pos] in options

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or expected not in (None, tokens[pos]):
            raise ValueError("not a literal expression")
        pos += 1
        return tokens[pos - 1]

    def expr() -> tuple[int | None, float]:
        sign, mag = term()
        while peek("+", "-"):
            minus = take() == "-"
            s2, m2 = term()
            s2 = -s2 if minus and s2 is not None else s2
            sign, mag = (sign if s2 in (0, sign) else s2 if sign == 0 else None), max(mag, m2) + math.log10(2)
        return sign, mag

    def term() -> tuple[int | None, float]:
        sign, mag = factor()
        while peek("*", "/", "\\cdot", "\\times"):
            divide = take() == "/"
            s2, m2 = factor()
            sign, mag = (None if None in (sign, s2) else sign * s2), (mag - m2 if divide else mag + m2)
        return sign, mag

    def factor() -> tuple[int | None, float]:
        if peek("-", "+"):
            minus = take() == "-"
            sign, mag = factor()
            return (-sign if minus and sign is not None else sign), mag
        sign, mag = atom()
        while peek("^", "!"):
            if take() == "!":
                sign, mag = 1, math.lgamma(10 ** min(mag, 300.0) + 1) / math.log(10)
                _spend(budget, mag)
            elif peek("{"):
                sign, mag = _power((sign, mag), atom(), budget)
            else:
                digit = take()
                if not (len(digit) == 1 and digit.isdigit()):
                    raise ValueError("not a literal exponent")
                sign, mag = _power((sign, mag), (int(digit > "0"), math.log10(int(digit) or 1e-300)), budget)
        return sign, mag

    def atom() -> tuple[int | None, float]:
        token = take()
        if token in _OPEN:
            value = expr()
            take(_CLOSE[_OPEN.index(token)])
            return value
        if not (token[0].isdigit() or token[0] == "."):
            raise ValueError("not a literal expression")
        if float(token) == 0:
            return 0, -math.inf
        return 1, math.log10(float(token)) if len(token) < 300 else len(token.split(".")[0]) - 1.0

    value = expr()
    if pos != len(tokens):
        raise ValueError("not a literal expression")
    return value


def _power(base: tuple[int | None, float], exponent: tuple[int | None, float],
           budget: list[float]) -> tuple[int | None, float]:
    (sign, mag), (e_sign, e_mag) = base, exponent
    if e_sign == 0:
        return 1, 0.0
    if sign == 0 or mag == 0:  # 0^x, (±1)^x: nothing to compute
        return sign, mag
    e = 10 ** min(e_mag, 300.0)
    _spend(budget, e * max(abs(mag), 1.0))
    return (1 if sign == 1 else None), (-e * mag if e_sign == -1 else e * abs(mag) if e_sign is None else e * mag)


def _spend(budget: list[float], digits: float) -> None:
    budget[0] -= digits
    if budget[0] < 0:
        raise _TooBig


def _matching(text: str, i: int, step: int) -> int | None:
    """The index of the bracket that closes (step 1) or opens (step -1) the one at `i`."""
    depth = 0
    while 0 <= i < len(text):
        depth += (text[i] in _OPEN) - (text[i] in _CLOSE)
        if depth == 0:
            return i
        i += step
    return None


def _operand_start(text: str, end: int) -> int | None:
    """Where the operand ending at `end` begins: a bracketed group or a number, with the base of a
    power whose exponent it is; None when it is neither (a letter, a command)."""
    j: int | None = end - 1
    if j < 0:
        return None
    if text[j] in _CLOSE:
        j = _matching(text, j, -1)
    elif text[j].isdigit() or text[j] == ".":
        while j > 0 and (text[j - 1].isdigit() or text[j - 1] == "."):
            j -= 1
    else:
        return None
    if j is not None and j > 0 and text[j - 1] == "^":
        return _operand_start(text, j - 1)
    return j


def astronomical(text: str) -> bool:
    r"""Whether `text` writes a power or factorial of literal numbers with more than 10^6 digits.

    Each power and factorial whose operands are literal numbers (with + - * / \cdot \times and
    brackets) is sized from its logarithm, never computed. A power of a symbol or a constant
    (x^{10^{10}}, e^{10^{10}}) is left alone: sympy keeps it symbolic.

    >>> [astronomical(a) for a in ("10^{10^{10}}", "9^{9^9}", "(10^{10})!", "10^{-10^{7}}", "(10^{10})^{10^{10}}")]
    [True, True, True, True, True]
    >>> [astronomical(a) for a in ("2^{10}", "x^2", r"e^{i\pi}", "10^{-3}", "2^{2^3}", "2^{2^{2^{2^2}}}", "100!")]
    [False, False, False, False, False, False, False]
    """
    if "^" not in text and "!" not in text:
        return False
    text = _SPACING.sub("", text)
    budget = [float(_MAX_DIGITS)]  # for the whole answer (a power inside another is counted twice)
    for i, c in enumerate(text):
        if c == "^" and text.startswith("{", i + 1):
            close = _matching(text, i + 1, 1)
            end = None if close is None else close + 1
        elif c == "^":
            end = i + 2 if text[i + 1:i + 2].isdigit() else None
        elif c == "!" and not text.startswith("!=", i):
            end = i + 1
        else:
            continue
        start = _operand_start(text, i)
        if start is None or end is None or not _LITERAL.fullmatch(text, start, end):
            continue
        try:
            _size(_TOKEN.findall(text, start, end), budget)
        except _TooBig:
            return True
        except (ValueError, RecursionError, OverflowError):  # not a literal expression after all
            continue
    return False


def judged_as_text(answer: str) -> bool:
    r"""Whether `answer` is compared as text (`same_text`) rather than by math-verify.

    Braces nested more than 10 deep (a 50-deep \frac), or a number of more than 10^6 digits
    (`astronomical`): math-verify would spend its whole timeout on either, whatever the other
    answer, and no real answer looks like them. Identical such answers are still equal.

    >>> judged_as_text("10^{10^{10^{10}}}"), judged_as_text(r"\frac{2^{10}}{3}")
    (True, False)
    """
    return _brace_depth(answer) > _MAX_DEPTH or astronomical(_latex(answer))


_SINGLE = re.compile(r"([\^_])\{([^{}\\])\}")


def same_text(a: str, b: str) -> bool:
    r"""Whether two answers are the same text, up to spacing, $…$, \boxed{}, \left/\right and x^{2} = x^2.

    >>> same_text("$10^{10^{10}}$", r"\boxed{10^{10^{ 10 }}}."), same_text("10^{10^{10}}", "10^{10^{11}}")
    (True, False)
    """

    def normal(text: str) -> str:
        boxed = last_boxed(text)
        text = _SPACING.sub("", text if boxed is None else boxed)
        text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
        return _SINGLE.sub(r"\1\2", text).rstrip(".")

    return normal(a) == normal(b)


# ---- literal numbers: compared exactly, without math-verify ----------------------------------
# math-verify's LaTeX parse costs ~3 ms per distinct answer (and per gold, in every worker), and
# two integer (or integer-fraction) literals are equal for it exactly when their values are.
# Decimals are left to it (it rounds to 6 places), but for those with only zeros after the point.
_INTEGER = re.compile(r"(-?)(\d{1,1000})(?:\.0*)?")
_FRACTION = re.compile(r"(-?)\\[dt]?frac\{(-?\d{1,1000})\}\{(-?\d{1,1000})\}")


def _literal(answer: str) -> Fraction | None:
    r"""The value of an integer ("033", "-12.00", "$12$", "12.") or \frac{a}{b} of integers; None for anything else.

    >>> _literal("$-12.00$"), _literal(r"\dfrac{24}{2}"), _literal("12.5"), _literal(r"\frac{1}{0}")
    (Fraction(-12, 1), Fraction(12, 1), None, None)
    """
    text = answer.strip()
    if text[:1] == "$" and text[-1:] == "$":
        text = text[1:-1].strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    m = _INTEGER.fullmatch(text)
    if m:
        return Fraction(int(m.group(1) + m.group(2)))
    m = _FRACTION.fullmatch(text)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int = TIMEOUT_S) -> tuple[Any, ...] | None:
    """math-verify's parse of a gold answer; () when it is judged as text; None when it does not parse."""
    from math_verify import parse

    if judged_as_text(gold):
        return ()
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
    (65,536 entries): the samples of a GRPO group repeat the same answers. Answers that
    math-verify could not judge in time (`judged_as_text`: a power tower, a 50-deep \frac) are
    compared as text (`same_text`); a prediction far longer than the gold is wrong unparsed.
    Integer and integer-fraction literals are compared exactly (`_literal`), without math-verify.

    >>> math_equal("033", "33"), math_equal(r"\frac12", "0.5"), math_equal("1/2", "2")
    (True, True, False)
    >>> math_equal("", "3") is None, math_equal("12", "10^{10^{10^{10}}}")
    (True, False)
    """
    from math_verify import parse, verify

    gold_value = _literal(gold)
    if gold_value is not None:
        pred_value = _literal(pred)
        if pred_value is not None:
            return gold_value == pred_value
    gold_parsed = _parse_gold(gold, timeout)
    if gold_parsed is None:
        return None
    if len(pred) > max(_MAX_PRED_CHARS, _MAX_PRED_RATIO * len(gold)):
        return False
    if not gold_parsed or judged_as_text(pred):
        return same_text(gold, pred)
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
    # The last math completion and its prediction: `pred` is called with the completion just
    # judged, and extraction walks the whole text (a 1 MB completion: ~0.1 s).
    last: list[Any] = [None, None]

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
            last[:] = completion, pred
            gold = str(answer).strip()
            if _literal(gold) is None and _parse_gold(gold, timeout) is None:
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
        if completion is last[0] and (record.get("task") or "math") == "math":
            return last[1]
        return extract_pred(completion, record, fallback)

    reward.extract_pred = pred  # type: ignore[attr-defined]  # score_record sets the record's `pred`
    return reward
