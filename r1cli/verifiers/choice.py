r"""The `choice` verifier: the letter the completion chooses matches the gold letter.

The letter is read from the <answer> tag's content, else (``boxed``, ``any``) the last \boxed{}
after the reasoning, else (``any``) the last "answer is (X)" / "answer: X". A gold answer may be
the letter or the text of one of the record's `choices`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from r1cli.templates import last_boxed
from r1cli.verifiers import Extraction, Mode, Verdict, after_think, the_answer_tag

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


def chosen_letter(completion: str, choices: Any = None, mode: Mode = "any") -> Extraction:
    r"""The letter a completion chooses: from <answer>/\boxed{}, else the last "answer is (X)".

    >>> chosen_letter("<think>hmm</think> The answer is (C).").pred
    'C'
    """
    tag, why = the_answer_tag(completion)
    if why is not None:
        return Extraction(None, why)
    region = after_think(completion)
    if tag is not None:
        letter = choice_letter(last_boxed(tag) or tag, choices)
        region = tag
    elif mode == "tag":
        return Extraction(None)
    else:
        letter = choice_letter(last_boxed(region), choices)
    if letter is not None or mode != "any":
        return Extraction(letter)
    found = [m for m in _ANSWER_IS.findall(region) if m in _letters(choices)]
    return Extraction(found[-1] if found else None)


class ChoiceVerifier:
    """Multiple choice: a gold letter (or choice text) in `answer`, optional `choices`."""

    task = "choice"

    def needs(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return ("answer",)

    def extract(self, completion: str, record: Mapping[str, Any], mode: Mode) -> Extraction:
        return chosen_letter(completion, record.get("choices"), mode)

    def judge(self, extraction: Extraction, completion: str, record: Mapping[str, Any]) -> float | None:
        answer, choices = record.get("answer"), record.get("choices")
        gold = choice_letter(None if answer is None else str(answer), choices)
        if gold is None:
            return None
        if extraction.why is not None:
            return Verdict(0.0, extraction.why)
        return 1.0 if extraction.pred == gold else 0.0


VERIFIER = ChoiceVerifier()
