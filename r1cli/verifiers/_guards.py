r"""Guards around math-verify: its timeout, and the answers it cannot judge in time.

math-verify (and sympy under it) stalls on some answers, and part of that work runs in C where
no ``signal.alarm`` interrupts it. Those answers are recognised from their text, before any
parse, and judged without math-verify: identical texts are equal, anything else is wrong with a
reason (`stall_reason`).
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from r1cli.templates import last_boxed

# math-verify's own limit per parse and per comparison (it arms signal.alarm with it).
TIMEOUT_S = 5
# Answers that math-verify cannot judge within its timeout are judged as text instead (see
# `judged_as_text`): more braces nested than this, or a number of more digits than this.
_MAX_DEPTH = 10
_MAX_DIGITS = 10**6
# A sum or product of more terms than this, over literal bounds, is not evaluated: sympy adds
# \sum_{k=1}^{N} k^k term by term (N = 10^4: 0.3 s; 10^12: past any timeout).
_MAX_TERMS = 10**4

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
    >>> [astronomical(a) for a in (r"(\frac{10^{10}}{1})!", r"10^{\frac{10^{10}}{1}}", r"\frac{2^{10}}{3}")]
    [True, True, False]
    """
    if "^" not in text and "!" not in text:
        return False
    text = fractions_as_division(_SPACING.sub("", text))
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


_FRAC = re.compile(r"\\[dt]?frac(?=\{)")


def fractions_as_division(text: str) -> str:
    r"""`text` with each \frac{A}{B} written ((A)/(B)), so that `astronomical` sizes it as a quotient.

    >>> fractions_as_division(r"\frac{10^{10}}{\dfrac{1}{2}}")
    '((10^{10})/(((1)/(2))))'
    """
    for _ in range(_MAX_DEPTH * 4):  # one \frac per pass, innermost last: bounded like the nesting
        m = None
        for m in _FRAC.finditer(text):
            pass
        if m is None:
            return text
        a_end = _matching(text, m.end(), 1)
        if a_end is None or not text.startswith("{", a_end + 1):
            return text
        b_end = _matching(text, a_end + 1, 1)
        if b_end is None:
            return text
        a, b = text[m.end() + 1:a_end], text[a_end + 2:b_end]
        text = text[:m.start()] + f"(({a})/({b}))" + text[b_end + 1:]
    return text


_BIG_OP = re.compile(r"\\(sum|prod)(?:\\limits)?\s*_")
_INTEGRAL = re.compile(r"\\(?:i{0,3}|o)int(?![A-Za-z])")


def _group(text: str, i: int) -> tuple[str, int] | None:
    """The LaTeX argument at `i` (a {group} or one character) and the index after it."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        close = _matching(text, i, 1)
        return None if close is None else (text[i + 1:close], close + 1)
    return text[i], i + 1


def _log10_literal(text: str) -> float | None:
    """log10 of the literal number `text` writes (10^{12}, 1000, \frac{10^6}{2}); None if it is not one."""
    try:
        sign, mag = _size(_TOKEN.findall(fractions_as_division(_SPACING.sub("", text))), [float(_MAX_DIGITS)])
    except (_TooBig, ValueError, RecursionError, OverflowError):
        return None
    return mag if sign == 1 else None


def too_many_terms(text: str) -> bool:
    r"""Whether `text` writes a \sum or \prod over literal bounds with more than 10^4 terms.

    >>> [too_many_terms(a) for a in (r"\sum_{k=1}^{10^{12}} k^{k}", r"\sum_{k=1}^{100} k", r"\sum_{k=1}^{n} k")]
    [True, False, False]
    """
    for m in _BIG_OP.finditer(text):
        lower = _group(text, m.end())
        if lower is None:
            continue
        rest = text[lower[1]:].lstrip()
        if not rest.startswith("^"):
            continue
        upper = _group(rest, 1)
        if upper is None:
            continue
        top = _log10_literal(upper[0])
        if top is not None and top > math.log10(_MAX_TERMS):
            return True
    return False


def stall_reason(answer: str) -> str | None:
    r"""Why math-verify would stall on `answer` (so it is judged as text), or None.

    >>> stall_reason(r"\int_0^1 e^{x^{x^{x}}}dx"), stall_reason("12") is None
    ('an unevaluated integral', True)
    """
    if _brace_depth(answer) > _MAX_DEPTH:
        return f"braces nested more than {_MAX_DEPTH} deep"
    if _INTEGRAL.search(answer):
        return "an unevaluated integral"
    if too_many_terms(answer):
        return f"a sum or product of more than {_MAX_TERMS:,} terms"
    if astronomical(answer):
        return f"a number of more than {_MAX_DIGITS:,} digits"
    return None


def judged_as_text(answer: str) -> bool:
    r"""Whether `answer` is compared as text (`same_text`) rather than by math-verify.

    Braces nested more than 10 deep (a 50-deep \frac), a number of more than 10^6 digits
    (`astronomical`), an integral, a sum of more than 10^4 terms (`stall_reason`): math-verify
    would spend its whole timeout on any of them, whatever the other answer, and no real final
    answer looks like them. Identical such answers are still equal.

    >>> judged_as_text("10^{10^{10^{10}}}"), judged_as_text(r"\frac{2^{10}}{3}")
    (True, False)
    """
    return stall_reason(answer) is not None


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

