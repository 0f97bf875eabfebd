r"""Answers that math-verify finds equal to the gold without the question having been solved.

math-verify's equivalence is symbolic: ``2 + 3`` equals ``5``, and ``(x+1)(x-1)`` equals
``x^2 - 1``. That is right for a grader that reads answers written by people, and an exploit for
a policy under RL: "Compute 2 + 3." answered with ``2 + 3`` scored 1.0, and so did every
question's own expression copied into the answer tag. Two rules close that class; each gives the
reason for its 0.0 (the record's ``score_error``):

- `undone_arithmetic`: against a gold that is a number, an answer made only of number literals
  and + - * / (``2 + 3``, ``3 \times 4 - 2``) leaves the arithmetic undone. A single fraction of
  two integers (``10/2``, ``\frac{24}{2}``) is a way to write a number and stays accepted, as do
  powers and roots (``2^{10}``, ``\sqrt{8}``), which are final forms in competition answers.
- `restated`: an answer that is an expression standing whole in the question (``1/2`` for "What
  is 1/2 as a decimal?", ``(x+1)(x-1)`` for "Expand (x+1)(x-1).") restates the question,
  unless it is the gold's own text. A part of a larger expression is not a restatement
  (``x+1`` for "Simplify (x+1)^2 - x^2 - x.").

Written here because math-verify has no notion of the question: it compares two answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from r1cli.templates import question_texts

_TEX_OPS = ((r"\times", "*"), (r"\cdot", "*"), ("×", "*"), ("·", "*"), ("∙", "*"), (r"\div", "/"), ("÷", "/"),
            ("−", "-"), ("–", "-"), (r"\left", ""), (r"\right", ""), (r"\dfrac", r"\frac"), (r"\tfrac", r"\frac"))
_TEX_SPACE = re.compile(r"\\[,;:! ]|\$|\\\(|\\\)|\\\[|\\\]")
# whitespace next to an operator or inside brackets goes; other runs of whitespace become one space
_AROUND_OP = re.compile(r"\s*([-+*/^=<>,!])\s*|([(\[{])\s+|\s+([)\]}])")
_SPACES = re.compile(r"\s+")


def normal(text: str) -> str:
    r"""`text` with TeX's operators as + - * /, no $ or TeX spacing, and no space around operators.

    >>> normal(r"$3 \times (4 - 2)$"), normal("Compute 2 + 3.")
    ('3*(4-2)', 'Compute 2+3.')
    """
    for tex, plain in _TEX_OPS:
        text = text.replace(tex, plain)
    text = _TEX_SPACE.sub(" ", text)
    text = _AROUND_OP.sub(lambda m: m.group(m.lastindex), text)
    return _SPACES.sub(" ", text).strip()


_ARITHMETIC = re.compile(r"[\d.+\-*/(){}]+")
_BINARY = re.compile(r"[\d.)}][+\-*/]")
_FRACTION = re.compile(r"[-(]?\d+/\d+\)?|-?\\frac\{\d+\}\{\d+\}")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)|-?\d+/\d+|-?\\frac\{-?\d+\}\{-?\d+\}")


def is_number(text: str) -> bool:
    r"""Whether `text` is a number literal: an integer, a decimal or a fraction of integers.

    >>> is_number("-12"), is_number("0.5"), is_number(r"\frac{1}{2}"), is_number("x"), is_number("2^{10}")
    (True, True, True, False, False)
    """
    return _NUMBER.fullmatch(normal(text).rstrip(".") or "x") is not None


def undone_arithmetic(pred: str) -> bool:
    r"""Whether `pred` is number literals joined by + - * / (other than one fraction of integers).

    >>> [undone_arithmetic(p) for p in ("2 + 3", r"3 \times 4", "(7-2)", "-5", "10/2", r"\frac{24}{2}", "2^{10}")]
    [True, True, True, False, False, False, False]
    """
    text = normal(pred).rstrip(".")
    if not _ARITHMETIC.fullmatch(text) or _FRACTION.fullmatch(text):
        return False
    return _BINARY.search(text) is not None


# an operation: a binary operator after an operand, a factorial, or a TeX function of operands
_OPERATION = re.compile(r"(?<=[\w)}\].!])[-+*/^]|!|\\(?:frac|sqrt|binom|sum|prod|int|log|ln|sin|cos|tan)\b")
_BEFORE = re.compile(r"[\w.+\-*/^({\[\\=<>]")  # a character that would make the match part of more
_AFTER = re.compile(r"[\w+\-*/^)}\](!\\=<>_]|\.\d")


def restated(pred: str, record: Mapping[str, Any]) -> str | None:
    r"""The expression of the question that `pred` restates, or None.

    >>> restated("2 + 3", {"prompt": "Compute 2 + 3."}), restated("x+1", {"prompt": "Simplify (x+1)^2 - x^2 - x."})
    ('2+3', None)
    >>> restated("5", {"prompt": "Compute 2 + 3."}), restated("2+3", {"prompt": "Compute 2 + 3.5"})
    (None, None)
    """
    expression = normal(pred).rstrip(".")
    if len(expression) < 2 or not _OPERATION.search(expression):
        return None
    for text in question_texts(record.get("prompt"), record.get("system")):
        question = normal(text)
        start = question.find(expression)
        while start != -1:
            end = start + len(expression)
            before, after = question[start - 1:start] if start else "", question[end:end + 2]
            if not (before and _BEFORE.fullmatch(before)) and not _AFTER.match(after):
                return expression
            start = question.find(expression, start + 1)
    return None
