r"""Verifiers: one module per task family, behind one small interface.

A verifier says what record fields it needs (`needs`), what final answer a completion gives
(`extract`: the `pred` of a scored record) and whether that answer is right (`judge`). The
`accuracy` reward picks the verifier by the record's `task` (`get`), and a new task is one
module here, named in `MODULES`.

`extract` takes the strictness `mode` (`accuracy.extract`, see docs/verifiers.md):

- ``tag``: only the content of the <answer> tag counts (R1-Zero, where the format is the task);
- ``boxed``: the <answer> tag, else a \boxed{} after the reasoning;
- ``any`` (default): also the "final answer" phrases, GSM8K's ``#### 18`` and ``A: 18`` lines, and
  the last LaTeX or number expression, as math-verify extracts them.

>>> get("math").extract("<think>2+2</think> The answer is $4$.", {}, "any").pred
'4'
>>> get("math").extract("<think>2+2</think> The answer is $4$.", {}, "tag").pred is None
True
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from r1cli.errors import BadInput

Mode = Literal["tag", "boxed", "any"]
MODES: tuple[str, ...] = ("tag", "boxed", "any")

# task → module; each module defines VERIFIER. Imported on first use (math pulls in math-verify).
MODULES = {
    "math": "r1cli.verifiers.math",
    "countdown": "r1cli.verifiers.countdown",
    "choice": "r1cli.verifiers.choice",
    "code": "r1cli.verifiers.code",
}
TASKS = tuple(MODULES)


@dataclass(frozen=True)
class Extraction:
    """What a verifier extracted from a completion: `pred` (None: nothing), and `why` when the
    completion is refused before judging (two different <answer> tags)."""

    pred: str | None
    why: str | None = None


class Verdict(float):
    """A reward value with the reason it is 0 (``why``), for the scored record's ``score_error``.

    >>> v = Verdict(0.0, "the equation chain asserts 4 = 3")
    >>> v == 0.0, v.why
    (True, 'the equation chain asserts 4 = 3')
    """

    why: str | None

    def __new__(cls, value: float, why: str | None = None) -> Verdict:
        self = super().__new__(cls, value)
        self.why = why
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across the scoring pool's processes
        return Verdict, (float(self), self.why)


class Verifier(Protocol):
    """One task family's checker."""

    task: str

    def needs(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The record fields a verdict needs (absent or null → the reward is null)."""
        ...

    def extract(self, completion: str, record: Mapping[str, Any], mode: Mode) -> Extraction:
        """The final answer the completion gives, under strictness `mode`."""
        ...

    def judge(self, extraction: Extraction, completion: str, record: Mapping[str, Any]) -> float | None:
        """1.0 right, 0.0 wrong (a `Verdict` when there is a reason to give), None when unscorable."""
        ...


_LOADED: dict[str, Verifier] = {}


def get(task: str | None) -> Verifier:
    """The verifier of `task` (default `math`); BadInput naming the valid tasks otherwise."""
    name = task or "math"
    if name not in _LOADED:
        if name not in MODULES:
            raise BadInput(f"unknown task '{name}'", hint=f"a record's task is one of: {', '.join(TASKS)}")
        _LOADED[name] = importlib.import_module(MODULES[name]).VERIFIER
    return _LOADED[name]


def check_mode(mode: str) -> Mode:
    """`mode` if it is a strictness mode; ValueError naming them otherwise."""
    if mode not in MODES:
        raise ValueError(f"extract must be one of {', '.join(MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


# ---- where the final answer is: shared by every verifier ----------------------------------------


def after_think(text: str) -> str:
    """The text after the reasoning: after the last </think>; '' while a <think> is still open;
    the whole text when there is no reasoning block (an ordinary chat model's answer).

    >>> after_think("<think>a</think> b"), after_think("<think> still thinking 4"), after_think("it is 4")
    ('b', '', 'it is 4')
    """
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    if "<think>" in text:
        return ""
    return text.strip()


def answer_tags(text: str) -> list[str]:
    """The contents of every <answer>…</answer> after the reasoning, in order (str.find: linear).

    >>> answer_tags("<think><answer>1</answer></think><answer> 2 </answer> <answer>3</answer>")
    ['2', '3']
    """
    text = after_think(text) if "</think>" in text else text
    out, pos = [], 0
    while True:
        start = text.find("<answer>", pos)
        if start == -1:
            return out
        end = text.find("</answer>", start + 8)
        if end == -1:
            return out
        inner = text[start + 8:end]
        nested = inner.rfind("<answer>")  # "<answer> <answer>4</answer>": the innermost opening
        out.append((inner[nested + 8:] if nested != -1 else inner).strip())
        pos = end + 9


def the_answer_tag(text: str) -> tuple[str | None, str | None]:
    """(content of the answer tag, None), (None, why) when several tags say different things,
    (None, None) when there is none. Repeating the same answer is one answer.

    >>> the_answer_tag("<answer>4</answer><answer> 4</answer>"), the_answer_tag("<answer>4</answer><answer>3</answer>")
    (('4', None), (None, '2 different <answer> tags'))
    """
    tags = answer_tags(text)
    if not tags:
        return None, None
    distinct = {" ".join(t.split()) for t in tags}
    if len(distinct) > 1:
        return None, f"{len(distinct)} different <answer> tags"
    return tags[-1], None
