"""Ways a policy raises a reward without solving the task score 0, as a class, with controls that still score.

- `format` / `tags`: a think or answer block that is empty, punctuation, or a placeholder (the
  template's own example, copied; any example block of the prompt) is no block.
- `accuracy` (`math`): an answer that restates the question's expression, or leaves the
  arithmetic undone against a number, is wrong, with the reason in `score_error`.
"""

from __future__ import annotations

import random
import re

import pytest

from r1cli.rewards import resolve
from r1cli.scoring import score_records
from r1cli.tasks import arithmetic
from r1cli.templates import R1_ZERO

RENDERED = R1_ZERO.format(prompt="Compute 2 + 3") + " <think>"  # what TRL hands the rewards in `r1 grpo`


def fn(name: str, **params):
    (reward,) = resolve([name], {name: params} if params else None)
    return reward.fn


# ---- format and tags: blocks without content -----------------------------------------------------

# the copied example in the spellings a policy drifts to; each row's completion follows a prefilled "<think>"
PLACEHOLDER_COMPLETIONS = [
    "</think> <answer> answer here </answer>",  # the R1-Zero run on SmolLM2, step 39 on
    " reasoning process here </think> <answer> answer here </answer>",
    " reasoning process here </think> <answer> 5 </answer>",
    " 2 + 3 = 5 </think> <answer> answer here </answer>",
    " 2 + 3 = 5 </think> <answer> Answer here. </answer>",
    " 2 + 3 = 5 </think> <answer> [your answer here] </answer>",
    " 2 + 3 = 5 </think> <answer>Your final answer</answer>",
    " 2 + 3 = 5 </think> <answer> ... </answer>",
    " 2 + 3 = 5 </think> <answer> … </answer>",
    " 2 + 3 = 5 </think> <answer></answer>",
    " 2 + 3 = 5 </think> <answer>\n\n</answer>",
    "</think><answer>5</answer>",  # no reasoning at all
    " \n </think><answer>5</answer>",
    " ... </think><answer>5</answer>",
    " Reasoning Process Here </think><answer>5</answer>",
    " <reasoning process here> </think><answer>5</answer>",
    " The reasoning process goes here. </think><answer>5</answer>",
    " step by step thinking </think><answer>5</answer>",
]


@pytest.mark.parametrize("completion", PLACEHOLDER_COMPLETIONS)
@pytest.mark.parametrize("strict", [True, False])
def test_a_block_without_content_fails_the_format(completion, strict):
    assert fn("format", strict=strict)(completion, prompt="Compute 2 + 3.", prefill="<think>") == 0.0
    assert fn("format", strict=strict)(completion, prompt=RENDERED) == 0.0  # the rendered prompt, as in grpo
    assert fn("format", strict=strict)("<think>" + completion) == 0.0  # no prefill: the tag written


@pytest.mark.parametrize(("completion", "expected"), [
    ("</think> <answer> answer here </answer>", 0.0),  # both blocks empty: no credit at all
    (" 2 + 3 = 5 </think> <answer> answer here </answer>", 0.5),  # the think block's two tags only
    (" reasoning process here </think> <answer> 5 </answer>", 0.5),  # the answer block's two tags only
    ("</think> 5", 0.0),  # an empty think block, no answer block
    (" 2 + 3 = 5 </think> <answer> 5 </answer>", 1.0),
    (" 2 + 3 = 5 </think> <answer> 5", 0.75),  # an unclosed answer is judged by its tags, as before
    (" reasoning process here", 0.25),  # an open think block is not yet a block
])
def test_tags_gives_no_credit_to_the_tags_of_an_empty_block(completion, expected):
    assert fn("tags")(completion, prompt="Compute 2 + 3.", prefill="<think>") == expected
    assert fn("tags")(completion, prompt=RENDERED) == expected


@pytest.mark.parametrize(("think", "answer"), [
    ("2 + 3 = 5", "5"),
    ("2+3=5", "5"),
    ("Here is the answer: add them.", "5"),  # placeholder words among real ones
    ("Add.", "A"),  # a choice letter is an answer
    ("The limit diverges.", "∞"),
    ("Compare.", "yes"),
    ("x", "\\frac{1}{2}"),
    ("思考", "五"),
    ("The answer is here.", "Here"),  # every word a placeholder word, but the reasoning is not
])
def test_blocks_with_content_still_pass(think, answer):
    completion = f" {think} </think> <answer> {answer} </answer>"
    if think == "The answer is here.":
        assert fn("format")(completion, prompt="Q", prefill="<think>") == 0.0  # documented: placeholder words only
        return
    assert fn("format")(completion, prompt="Q", prefill="<think>") == 1.0
    assert fn("format", strict=False)(completion, prompt=RENDERED) == 1.0
    assert fn("tags")(completion, prompt="Q", prefill="<think>") == 1.0


# what the policy wrote next, once the template's own words scored 0 (examples/r1-mini/results-reward-rules),
# and its neighbours: a filler phrase ending in "here", one block copying the other, words for a number
DRIFTED = [
    (" computation here </think> <answer> computation here </answer>\nBased on the previous answer: 6 + 4", "12"),
    (" computation here </think> <answer> 12 </answer>", "12"),
    (" the working goes here </think> <answer> 12 </answer>", "12"),
    (" 6 + 6 = 12 </think> <answer> result here </answer>", "12"),
    (" 6 + 6 = 12 </think> <answer> Final number goes here. </answer>", "12"),
    (" 6 + 6 = 12 </think> <answer> computing </answer>", "12"),  # against a number: no digit, no TeX
    (" 6 + 6 = 12 </think> <answer> the sum </answer>", "12"),
    (" 6 + 6 = 12 </think> <answer> twelve </answer>", "12"),  # documented: words for a number are no answer
    (" 12 </think> <answer> 12 </answer>", "12"),  # the think block only repeats the answer
    (" computing the sum </think> <answer> computing the sum </answer>", "Paris"),
    # the third run's drift (results-class-rules): the think block copies the question
    (" Compute 6 + 6 </think> <answer> 6 + 6 </answer> <str> 6 + 6 </str>", "12"),
    (" Compute 6 + 6 </think> <answer> 12 </answer>", "12"),
    (" compute 6+6 = ? </think> <answer> 12 </answer>", "12"),
    (" 6 + 6 </think> <answer> 12 </answer>", "12"),
    (" Compute 6 + 6. </think> Compute 6 + 6 <answer> 12 </answer>", "12"),
]


@pytest.mark.parametrize(("completion", "gold"), DRIFTED)
@pytest.mark.parametrize("strict", [True, False])
def test_what_the_policy_drifted_to_fails_the_format(completion, gold, strict):
    kwargs = {"prompt": "Compute 6 + 6.", "prefill": "<think>", "answer": gold, "task": "math"}
    assert fn("format", strict=strict)(completion, **kwargs) == 0.0
    assert fn("tags")(completion, **kwargs) <= 0.5  # at most the tags of the block that holds something


@pytest.mark.parametrize("think", ["Compute 6 + 6: 6 + 6 = 12", "6 + 6 is 12", "6+6=12", "twice 6 is 12",
                                   "Compute 6 + 6 means adding 6 to 6", "12"])
@pytest.mark.parametrize("prompt", ["Compute 6 + 6.", [{"role": "user", "content": "Compute 6 + 6."}]])
def test_a_think_block_that_works_on_the_question_passes(think, prompt):
    """Restating the question and going on is reasoning; only a bare copy of it (or of a piece) is not."""
    kwargs = {"prompt": prompt, "prefill": "<think>", "answer": "12", "task": "math"}
    completion = f" {think} </think> <answer> 12 </answer>"
    assert fn("format", strict=True)(completion, **kwargs) == (0.0 if think == "12" else 1.0)  # "12" repeats the answer
    assert fn("tags")(completion, **kwargs) == (0.5 if think == "12" else 1.0)


@pytest.mark.parametrize(("completion", "record"), [
    (" 6 + 6 = 12 </think> <answer> 12 </answer>", {"answer": "12"}),
    (" 6 + 6 = 12 </think> <answer> \\frac{24}{2} </answer>", {"answer": "12"}),
    (" 6 + 6 = 12 </think> <answer> x = 12 </answer>", {"answer": "12"}),
    (" compare the capitals </think> <answer> Paris </answer>", {"answer": "Paris"}),  # a word gold
    (" compare the capitals </think> <answer> Paris </answer>", {}),  # no gold: any content is content
    (" look at the options </think> <answer> B </answer>", {"answer": "B", "task": "choice"}),
    (" 6 + 6 = 12 </think> <answer> twelve </answer>", {"answer": "12", "task": "choice"}),  # not math
])
def test_answers_of_the_golds_kind_pass(completion, record):
    assert fn("format")(completion, prompt="Q", prefill="<think>", **record) == 1.0
    assert fn("tags")(completion, prompt="Q", prefill="<think>", **record) == 1.0


CUSTOM = ("Think inside <think> your scratch work </think>, then give <answer> the final integer </answer>. "
          "Question: {q}")


@pytest.mark.parametrize(("prompt", "system", "answer", "expected"), [
    (CUSTOM.format(q="2 + 3?"), None, "the final integer", 0.0),  # a custom template's example
    (CUSTOM.format(q="2 + 3?"), None, "The Final Integer.", 0.0),
    (CUSTOM.format(q="2 + 3?"), None, "5", 1.0),
    (CUSTOM.format(q="2 + 3?"), None, "integer", 1.0),  # not the example: some other (wrong) answer
    ([{"role": "system", "content": CUSTOM.format(q="")}, {"role": "user", "content": "2 + 3?"}], None,
     "the final integer", 0.0),  # the example in a chat prompt's system message
    ("2 + 3?", CUSTOM.format(q=""), "the final integer", 0.0),  # the record's `system`
    ("Q: Is 4 even? A: <think>4 = 2 * 2</think><answer>yes</answer>\nQ: Is 6 even? A: <think>", None, "yes", 1.0),
    ("Q: 1 + 1? A: <think>add</think><answer>2</answer>\nQ: 2 + 3? A: <think>", None, "5", 1.0),
])
def test_the_prompts_own_example_block_is_a_placeholder(prompt, system, answer, expected):
    completion = f" adding the two numbers </think><answer> {answer} </answer>"
    prefill = None if isinstance(prompt, str) and prompt.endswith("<think>") else "<think>"
    assert fn("format")(completion, prompt=prompt, system=system, prefill=prefill) == expected


def test_score_applies_it_to_rollout_records():
    hacked, solved = "</think> <answer> answer here </answer>", " 2 + 3 = 5 </think> <answer>5</answer>"
    records = [{"prompt": "Compute 2 + 3.", "template": "r1-zero", "prefill": "<think>", "answer": "5",
                "completion": c} for c in (hacked, solved)]
    out = list(score_records(records, resolve(["accuracy", "format", "tags"]), workers=0))
    assert [o["rewards"] for o in out] == [{"accuracy": 0.0, "format": 0.0, "tags": 0.0},
                                           {"accuracy": 1.0, "format": 1.0, "tags": 1.0}]


# ---- accuracy: answers that equal the gold without solving the question ---------------------------


def tag(answer: str) -> str:
    return f"<think>work</think><answer>{answer}</answer>"


@pytest.mark.parametrize(("prompt", "gold", "pred", "reason"), [
    ("Compute 2 + 3.", "5", "2 + 3", "arithmetic undone"),
    ("Compute 2 + 3.", "5", "2+3", "arithmetic undone"),
    ("Compute 2 + 3.", "5", "3 + 2", "arithmetic undone"),
    ("Compute 2 + 3.", "5", r"\boxed{2 + 3}", "arithmetic undone"),
    ("Compute 2 + 3.", "5", "$2 + 3$", "arithmetic undone"),
    ("Compute 2 + 3.", "5", "1 + 4", "arithmetic undone"),
    ("Compute 2 + 3.", "5", "5 + 0", "arithmetic undone"),
    ("Compute 7 * 8 - 3.", "53", "56 - 3", "arithmetic undone"),
    ("Compute 7 * 8 - 3.", "53", r"7 \times 8 - 3", "arithmetic undone"),
    ("Compute 7 * 8 - 3.", "53", r"7 \cdot 8 - 3", "arithmetic undone"),
    ("Compute 7 * 8 - 3.", "53", "7 × 8 − 3", "arithmetic undone"),
    ("Compute 12 / 4 + 1.", "4", r"12 \div 4 + 1", "arithmetic undone"),
    ("Compute (2 + 3) * 4.", "20", "(2 + 3) * 4", "arithmetic undone"),
    ("Compute 1.5 + 1.5.", "3", "1.5 + 1.5", "arithmetic undone"),
    ("Compute 0.25 + 0.25.", "0.5", "0.25+0.25", "arithmetic undone"),
    ("Compute 10 / 2.", "5", "10 / 2", "restates the question"),  # a fraction, but the question's
    ("Compute 10 / 2.", "5", r"\frac{10}{2}", None),  # written another way than the question: a number
    ("What is 1/2 as a decimal?", "0.5", "1/2", "restates the question"),
    ("Compute 2^{10}.", "1024", "2^{10}", "restates the question"),
    ("Compute $2^{10}$.", "1024", "2^{10}", "restates the question"),
    (r"Simplify $\frac{24}{2}$.", "12", r"\frac{24}{2}", "restates the question"),
    (r"Simplify $\sqrt{8}$.", r"2\sqrt{2}", r"\sqrt{8}", "restates the question"),
    ("Expand (x+1)(x-1).", "x^2 - 1", "(x+1)(x-1)", "restates the question"),
    ("Expand (x + 1)(x - 1).", "x^2 - 1", "(x+1)(x-1)", "restates the question"),
    ("Factor x^2 - 1.", "(x+1)(x-1)", "x^2 - 1", "restates the question"),
    ("Compute 5!.", "120", "5!", "restates the question"),
    ("Compute 5! / 3!.", "20", "5!/3!", "restates the question"),
])
def test_an_answer_that_does_not_solve_the_question_is_wrong(prompt, gold, pred, reason):
    records = [{"prompt": prompt, "answer": gold, "completion": tag(pred)}]
    (out,) = score_records(records, resolve(["accuracy"]), workers=0)
    if reason is None:
        assert out["rewards"] == {"accuracy": 1.0}
        return
    assert out["rewards"] == {"accuracy": 0.0}, out
    assert reason in out["score_error"]


@pytest.mark.parametrize(("prompt", "gold", "pred"), [
    ("Compute 2 + 3.", "5", "5"),
    ("Compute 2 + 3.", "5", "5.0"),
    ("Compute 2 + 3.", "5", "x = 2 + 3 = 5"),  # the chain ends in the number
    ("Compute 2 + 3.", "5", r"\frac{10}{2}"),
    ("Halve ten.", "5", "10/2"),  # a fraction of integers is a number
    ("How many subsets has a 10-element set?", "1024", "2^{10}"),  # powers and roots are final forms
    ("Compute 8^{1/2}.", r"2\sqrt{2}", r"2\sqrt{2}"),
    ("Which is larger, 2^{10} or 10^3?", "2^{10}", "2^{10}"),  # the question's expression is the gold
    ("Simplify (x+1)^2 - x^2 - x.", "x + 1", "x+1"),  # a part of the question's expression
    ("Expand (x+1)(x-1).", "x^2 - 1", "x^2-1"),
    ("Compute 2 + 3.5", "5.5", "5.5"),
    ("Compute 2 + 3.5", "5.5", "11/2"),
    ("Solve x + 2 = 5.", "3", "x = 3"),
    ("Solve x + 2 = 5.", "3", "3"),
    ("What is -5 plus 10?", "5", "5"),
    ("Compute 3 - 8.", "-5", "-5"),
    ("Compute 3 - 8.", "-5", "(-5)"),
    ("Find f(x) = 2x + 1 at x = 1.", "3", "3"),
])
def test_answers_that_solve_the_question_still_score(prompt, gold, pred):
    records = [{"prompt": prompt, "answer": gold, "completion": tag(pred)}]
    (out,) = score_records(records, resolve(["accuracy"]), workers=0)
    assert out["rewards"] == {"accuracy": 1.0}, out


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_no_arithmetic_task_is_solved_by_copying_or_reordering_it(difficulty):
    # the class over the task's own data: every prompt of `r1 data arithmetic`, its expression
    # copied, with the operands of one + or * swapped, and rendered in TeX; the gold itself scores
    rng = random.Random(difficulty)
    records = []
    for rec in arithmetic.generate(40, seed=difficulty, difficulty=difficulty):
        expression = rec["prompt"][len("Compute "):-1]
        swapped = re.sub(r"(\d+) ([+*]) (\d+)", r"\3 \2 \1", expression, count=1)
        tex = expression.replace("*", r"\times").replace("/", r"\div")
        padded = rng.choice([expression + " + 0", "0 + " + expression])
        for pred in {expression, swapped, tex, f"({expression})", padded}:
            records.append({**rec, "completion": tag(pred), "hack": True})
        records.append({**rec, "completion": tag(rec["answer"]), "hack": False})
    out = list(score_records(records, resolve(["accuracy"]), workers=0))
    solved = [o for o in out if o["hack"] and o["rewards"]["accuracy"] != 0.0]
    assert not solved, solved[:3]
    assert all(o["rewards"]["accuracy"] == 1.0 for o in out if not o["hack"])


def test_eval_grades_the_same_way():
    # r1 eval scores through the same accuracy and format rewards: pass@1 and format count neither hack
    from r1cli.evaluation import EVAL_REWARDS

    records = [{"prompt": "Compute 2 + 3.", "answer": "5", "prefill": "<think>",
                "completion": "</think> <answer> 2 + 3 </answer>"}]
    (out,) = score_records(records, resolve(list(EVAL_REWARDS)), workers=0)
    assert out["rewards"] == {"accuracy": 0.0, "format": 0.0}
