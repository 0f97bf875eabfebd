r"""The task-aware `accuracy` reward: is the completion's final answer right?

The record's `task` (default `math`) picks a verifier in `r1cli.verifiers` (`math`, `countdown`,
`choice`, `code`): it names the fields it needs, extracts the final answer (the record's
`pred`) and judges it. docs/verifiers.md says what each one extracts and judges.

`extract` sets how strict extraction is: ``tag`` (only <answer>…</answer>), ``boxed`` (the
tag, else a \boxed{}), ``any`` (default: also "final answer" phrases, GSM8K's ``####``/``A:``
lines, the last expression). The default is ``any`` because the format is the `format` reward's
concern: `r1 eval` of a chat model that writes "The answer is 5." is graded on its answer, and
an R1-Zero run that wants the tags rewards them with ``-r format`` (or sets ``extract=tag``).

Unparseable gold → None ("cannot be scored"); no extractable answer → 0.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from r1cli.rewards import RewardFn, register
from r1cli.verifiers import TASKS, Mode, Verifier, check_mode, get
from r1cli.verifiers._guards import (  # noqa: F401  re-exported: metrics and benchmarks use them
    TIMEOUT_S,
    astronomical,
    judged_as_text,
    math_verify_timeout,
    same_text,
)
from r1cli.verifiers.math import (  # noqa: F401
    MathVerifier,
    _latex,
    _literal,
    judge_math,
    last_number,
    math_equal,
    warm_up,
)

__all__ = ["TASKS", "accuracy_reward", "extract_pred", "judge_math", "math_equal", "same_text"]

Fallback = Literal["none", "last-number"]
Extract = Literal["any", "boxed", "tag"]


def _needs(record: Mapping[str, Any]) -> tuple[str, ...]:
    task = record.get("task") or "math"
    try:
        return get(task).needs(record)
    except Exception:  # an unknown task: the reward itself reports it, naming the valid tasks
        return ()


def extract_pred(completion: str, record: Mapping[str, Any], fallback: Fallback = "none",
                 extract: Extract = "any") -> str | None:
    """The final answer that `accuracy` judges for this record's task (None for `code` or when absent).

    >>> extract_pred(r"so \\boxed{12}", {"answer": "12"})
    '12'
    >>> extract_pred("it is 12", {}), extract_pred("it is 12", {}, extract="tag")
    ('12', None)
    """
    pred = get(record.get("task")).extract(completion, record, check_mode(extract)).pred
    if pred is None and fallback == "last-number" and (record.get("task") or "math") == "math":
        pred = last_number(completion)
    return pred


@register("accuracy", needs=_needs)
def accuracy_reward(extract: Extract = "any", fallback: Fallback = "none", timeout: int = TIMEOUT_S) -> RewardFn:
    r"""1.0 if the completion's final answer is right for the record's `task`, 0.0 if not, None if unscorable.

    `extract` ("any" | "boxed" | "tag"): where the final answer may be (docs/verifiers.md).
    `fallback` ("none" | "last-number"): what a math completion with nothing extracted is judged
    by; "last-number" takes the last number after the reasoning. `timeout`: seconds per
    math-verify parse or comparison (math-verify's own default, 5); effective only in a
    process's main thread (see `math_verify_timeout`).

    >>> acc = accuracy_reward()
    >>> acc(r"<think>…</think><answer>\frac{1}{2}</answer>", answer="0.5")
    1.0
    >>> acc("no final answer", answer="3"), acc(r"\boxed{3}", answer=r"\frac{") is None
    (0.0, True)
    >>> acc("<answer>x = 4 = 3</answer>", answer="3").why
    'the equation chain asserts 4 = 3'
    >>> acc("<answer>(55 - 36) * 2 = 38</answer>", task="countdown", numbers=[55, 36, 2], target=38)
    1.0
    """
    mode: Mode = check_mode(extract)
    if fallback not in ("none", "last-number"):
        raise ValueError(f"fallback must be 'none' or 'last-number', got {fallback!r}")
    if timeout < 1:
        raise ValueError(f"timeout must be at least 1 second, got {timeout}")
    math_verifier = MathVerifier(timeout)
    warm_up()
    # The last completion and its extraction: `pred` is called with the completion just judged,
    # and extraction walks the whole text (a 1 MB completion: ~0.1 s).
    last: list[Any] = [None, None, None]

    built: dict[str, Verifier] = {"math": math_verifier}  # one instance per reward: code builds its sandbox reward

    def verifier(task: str | None) -> Verifier:
        name = task or "math"
        if name not in built:
            built[name] = type(get(name))()
        return built[name]

    def extraction(completion: str, record: Mapping[str, Any]) -> Any:
        task = record.get("task") or "math"
        if completion is last[0] and task == last[1]:
            return last[2]
        found = verifier(task).extract(completion, record, mode)
        if found.pred is None and found.why is None and fallback == "last-number" and task == "math":
            found = type(found)(last_number(completion))
        last[:] = completion, task, found
        return found

    def reward(completion: str, **record: Any) -> float | None:
        chosen = verifier(record.get("task"))  # BadInput for an unknown task
        if any(record.get(f) is None for f in chosen.needs(record)):
            return None
        return chosen.judge(extraction(completion, record), completion, record)

    def pred(completion: str, record: Mapping[str, Any]) -> str | None:
        return extraction(completion, record).pred

    reward.extract_pred = pred  # type: ignore[attr-defined]  # score_record sets the record's `pred`
    return reward
