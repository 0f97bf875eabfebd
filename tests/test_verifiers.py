"""The verifier interface: one module per task, dispatched by `task`, strictness modes per verifier."""

from __future__ import annotations

import importlib
import json
import pickle

import pytest

from r1cli import verifiers
from r1cli.errors import BadInput
from r1cli.rewards.accuracy import accuracy_reward, extract_pred
from r1cli.verifiers import Verdict

T = "<think>reasoning</think>\n"


@pytest.mark.parametrize("task", verifiers.TASKS)
def test_each_task_is_one_module_with_a_verifier(task):
    verifier = importlib.import_module(verifiers.MODULES[task]).VERIFIER
    assert verifier.task == task
    assert verifiers.get(task) is verifier
    for method in ("needs", "extract", "judge"):
        assert callable(getattr(verifier, method))


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(BadInput, match="unknown task 'maths'") as info:
        verifiers.get("maths")
    assert "math, countdown, choice, code" in info.value.hint


@pytest.mark.parametrize(("record", "needs"), [
    ({}, ("answer",)),
    ({"task": "countdown"}, ("numbers", "target")),
    ({"task": "choice"}, ("answer",)),
    ({"task": "code"}, ("tests",)),
])
def test_needs(record, needs):
    assert verifiers.get(record.get("task")).needs(record) == needs


def test_a_verdict_is_a_float_that_survives_pickling_and_json():
    v = Verdict(0.0, "why")
    assert pickle.loads(pickle.dumps(v)).why == "why"
    assert json.dumps({"accuracy": v}) == '{"accuracy": 0.0}'


COUNTDOWN = {"task": "countdown", "numbers": [55, 36, 2], "target": 38}


@pytest.mark.parametrize(("completion", "mode", "expected"), [
    (f"{T}<answer>(55 - 36) * 2</answer>", "tag", 1.0),
    (f"{T}<answer>(55 - 36) * 2 = 38</answer>", "any", 1.0),
    (f"{T}So \\boxed{{(55 - 36) \\times 2}}", "boxed", 1.0),
    (f"{T}So \\boxed{{(55 - 36) \\times 2}}", "tag", 0.0),
    (f"{T}<answer>55 - 36 - 2</answer>", "any", 0.0),
    (f"{T}<answer>(55 - 36) * 2</answer><answer>55 - 36 - 2</answer>", "any", 0.0),  # competing tags
])
def test_countdown_modes(completion, mode, expected):
    assert accuracy_reward(extract=mode)(completion, **COUNTDOWN) == expected


@pytest.mark.parametrize(("completion", "mode", "pred"), [
    (f"{T}<answer>(B)</answer>", "tag", "B"),
    (f"{T}The answer is (C).", "any", "C"),
    (f"{T}The answer is (C).", "boxed", None),
    (f"{T}\\boxed{{D}}", "boxed", "D"),
    (f"{T}\\boxed{{D}}", "tag", None),
    (f"{T}<answer>7</answer>", "tag", "B"),  # the text of a choice
])
def test_choice_modes(completion, mode, pred):
    record = {"task": "choice", "answer": "B", "choices": ["5", "7", "9", "11"]}
    assert extract_pred(completion, record, extract=mode) == pred
    assert accuracy_reward(extract=mode)(completion, **record) == float(pred == "B")


def test_code_extracts_nothing():
    assert extract_pred("```python\nprint(1)\n```", {"task": "code", "tests": []}) is None
