r"""The `countdown` verifier: the expression uses each of the record's `numbers` once and equals `target`.

The expression is the <answer> tag's content, else (``boxed``, ``any``) the last \boxed{} after
the reasoning; LaTeX operators are read as arithmetic and a trailing "= target" is dropped. The
arithmetic itself is `r1cli.tasks.countdown.check` (exact fractions, no eval).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from r1cli.templates import last_boxed
from r1cli.verifiers import Extraction, Mode, Verdict, after_think, the_answer_tag

_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("\\left", ""), ("\\right", ""), ("$", ""))


def countdown_expr(completion: str, target: Any = None, mode: Mode = "any") -> Extraction:
    r"""The expression of a Countdown answer (<answer> else last \boxed{}), minus a trailing "= target".

    >>> countdown_expr(r"<answer>(19 + 36) \times 2 = 110</answer>", 110).pred
    '(19 + 36) * 2'
    """
    tag, why = the_answer_tag(completion)
    if why is not None:
        return Extraction(None, why)
    expr = tag if tag is not None or mode == "tag" else last_boxed(after_think(completion))
    if expr is not None and tag is not None:
        expr = last_boxed(expr) or expr
    if expr is None:
        return Extraction(None)
    for latex, plain in _LATEX_OPS:
        expr = expr.replace(latex, plain)
    if target is not None and "=" in expr:
        left, _, right = expr.rpartition("=")
        if right.strip() == str(target).strip():
            expr = left
    return Extraction(expr.strip() or None)


class CountdownVerifier:
    """Countdown: `numbers` (each used once) and `target`."""

    task = "countdown"

    def needs(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return ("numbers", "target")

    def extract(self, completion: str, record: Mapping[str, Any], mode: Mode) -> Extraction:
        return countdown_expr(completion, record.get("target"), mode)

    def judge(self, extraction: Extraction, completion: str, record: Mapping[str, Any]) -> float | None:
        from r1cli.tasks.countdown import check

        numbers, target = record.get("numbers"), record.get("target")
        if numbers is None or target is None:
            return None
        try:
            nums = [int(n) for n in numbers]
            goal = Fraction(str(target).strip())
        except (TypeError, ValueError):
            return None
        if extraction.why is not None:
            return Verdict(0.0, extraction.why)
        if extraction.pred is None:
            return 0.0
        return 1.0 if check(extraction.pred, nums, goal) else 0.0


VERIFIER = CountdownVerifier()
