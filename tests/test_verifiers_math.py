r"""The `math` verifier on labelled answer pairs: each row is (gold, completion, right?).

The label is whether the completion's final answer is right, judged by hand. The rows cover the
kinds where plain math-verify (`verify(parse(gold), parse(completion))`) misgrades: answers in
sentences, several boxes, text without tags or boxes, inequalities against intervals, tiny
decimals, equation chains, several values against one gold, competing <answer> tags, units,
percentages, GSM8K and MATH final lines. `test_defaults_agree_with_the_labels_more_than_math_verify`
computes both graders on every row.
"""

from __future__ import annotations

import logging
import time

import pytest

from r1cli.rewards import resolve, score_record
from r1cli.rewards.accuracy import accuracy_reward, extract_pred

T = "<think>Let me work through it step by step and check the result.</think>\n"


def tag(answer: str) -> str:
    return f"{T}<answer>{answer}</answer>"


TAGGED = [
    ("5", tag("5"), True),
    ("5", tag("6"), False),
    (r"\frac{1}{2}", tag("0.5"), True),
    (r"\frac{1}{2}", tag("1/2"), True),
    (r"\frac{1}{2}", tag("0.25"), False),
    ("033", tag("33"), True),
    (r"2\sqrt{3}", tag(r"\sqrt{12}"), True),
    (r"2\sqrt{3}", tag(r"3\sqrt{2}"), False),
    ("x = 3", tag("x=3"), True),
    ("3", tag("x = 3"), True),
    ("3", tag("x = 4"), False),
    (r"\pi", tag(r"\pi"), True),
    (r"\frac{\pi}{2}", tag(r"\dfrac{\pi}{2}"), True),
    ("-7", tag("-7"), True),
    ("-7", tag("7"), False),
    ("1000", tag(r"1\,000"), True),
    ("12", tag(r"\boxed{12}"), True),
    (r"x^2 + 2x + 1", tag(r"(x+1)^2"), True),
    (r"x^2 + 2x + 1", tag(r"(x-1)^2"), False),
    ("e", tag("e"), True),
]

SENTENCES = [
    ("12", tag("The final answer is $12$."), True),
    ("12", tag("The final answer is $13$."), False),
    ("34", tag("Final Answer: The largest $n$ is 34."), True),
    ("34", tag("Final Answer: The largest $n$ is 35."), False),
    ("7", tag("So she has 7 apples left."), True),
    ("7", tag("So she has 8 apples left."), False),
    (r"\frac{3}{4}", tag(r"The probability is $\frac{3}{4}$."), True),
    (r"\frac{3}{4}", tag(r"The probability is $\frac{2}{3}$."), False),
    ("20", tag("Therefore, the answer is 20."), True),
    ("20", tag("Therefore the total cost is $20."), True),
    ("9", tag(r"The answer is \(9\)."), True),
    ("9", tag(r"The answer is \(10\)."), False),
    ("42", tag("After adding everything up we get 42"), True),
    ("2", tag("We find that $x = 2$ is the only solution."), True),
    ("2", tag("We find that $x = 3$ is the only solution."), False),
]

UNTAGGED = [
    ("5", "5", True),
    ("5", "6", False),
    (r"\frac{1}{2}", "0.5", True),
    (r"\frac{1}{2}", "0.6", False),
    (r"(1,\frac{9}{2})", "$(1,4.5)$", True),
    (r"(1,\frac{9}{2})", "$(1,5)$", False),
    ("12", "The answer is 12.", True),
    ("12", "The answer is 11.", False),
    ("12", f"{T}The answer is 12.", True),
    ("12", f"{T}The answer is 11.", False),
    ("144", "First, 12 times 12 is 144. So the area is 144 square units.", True),
    ("144", "First, 12 times 12 is 144. So the area is 140 square units.", False),
    ("8", "The answer is $8$", True),
    ("8", "I think the result is $9$", False),
    ("3.5", "It takes 3.5 hours.", True),
    ("3.5", "It takes 4.5 hours.", False),
    ("1234", "She has 1,234 apples in total.", True),
    ("1234", "She has 1,243 apples in total.", False),
    (r"\sqrt{2}", r"The diagonal is $\sqrt{2}$.", True),
    (r"\sqrt{2}", r"The diagonal is $\sqrt{3}$.", False),
]

BOXED = [
    ("12", r"So the answer is \boxed{12}.", True),
    ("12", r"So the answer is \boxed{13}.", False),
    ("12", rf"{T}So the answer is $\boxed{{12}}$.", True),
    (r"\{1,2,3\}", r"\boxed{1}, \boxed{2}, \boxed{3}", True),
    (r"\{1,2,3\}", r"\boxed{1}, \boxed{2}", False),
    ("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", True),
    ("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 3)}", False),
    ("1, 2", r"The roots are \boxed{1} and \boxed{2}.", True),
    ("2", r"The roots are \boxed{1} and \boxed{2}.", False),
    ("3", r"\boxed{3} is the answer, as computed", True),
    (r"\frac{1}{2}", r"\boxed{\dfrac{1}{2}}", True),
    ("4", r"<think>I think it is \boxed{4}</think>", True),
    ("-1", r"$$\boxed{-1}$$", True),
    ("-1", r"$$\boxed{1}$$", False),
    ("10", r"Thus \fbox{10}.", True),
]

INEQUALITIES = [
    ("(-2, 2)", tag("-2 < x < 2"), True),
    ("(-2, 2)", tag(r"-2 \le x \le 2"), False),
    ("(-2, 2)", tag("-3 < x < 3"), False),
    ("[1, 5]", tag(r"1 \le x \le 5"), True),
    ("[1, 5]", tag(r"1 < x \le 5"), False),
    (r"(0, \infty)", tag("x > 0"), True),
    (r"(0, \infty)", tag(r"x \ge 0"), False),
    (r"(-\infty, 3]", tag(r"x \le 3"), True),
    (r"(-\infty, 3]", tag("x < 3"), False),
    (r"x \le 3", tag(r"(-\infty, 3]"), True),
    (r"x > 1", tag("x > 1"), True),
    (r"x > 1", tag("x < 1"), False),
]

TINY = [
    ("0.0000004", tag("0.0000001"), False),
    ("0.0000004", tag("0.0000004"), True),
    ("0.0000004", tag("4 \\times 10^{-7}"), True),
    ("0.000001234", tag("0.0000014"), False),
    ("0.000001234", tag("0.000001234"), True),
    ("0.00005", tag("0.00006"), False),
    ("0.00005", tag("5 \\times 10^{-5}"), True),
    ("0.00005", tag("0.000050"), True),
    ("0", tag("0.0000001"), False),
    ("2.5 \\times 10^{-8}", tag("0.000000025"), True),
    ("2.5 \\times 10^{-8}", tag("0.00000003"), False),
    (r"\frac{1}{3}", tag("0.333333"), True),
    (r"\frac{1}{3}", tag("0.33"), False),
    ("1e-9", tag("0.000000002"), False),
    ("0.1", tag("0.1001"), False),
    ("0.1", tag("0.1000001"), True),  # equal to 6 significant places, as math-verify rounds
]

CHAINS = [
    ("3", tag("x = 4 = 3"), False),
    ("3", tag("4 = 3"), False),
    ("3", tag("3 = x"), True),
    ("3", tag("x = 2 + 1 = 3"), True),
    ("3", tag("x = 2 + 2 = 3"), False),
    ("4", tag("2 + 2 = 4"), True),
    ("5", tag("2 + 2 = 5"), False),
    ("6", tag(r"\frac{12}{2} = 6"), True),
    ("6", tag(r"\frac{12}{3} = 6"), False),
    ("3", f"{T}So x = 4 = 3", False),
    ("18", f"{T}So she pays 9*2 = 18 dollars.", True),
    ("17", f"{T}So she pays 9*2 = 17 dollars.", False),
    ("y = 2x + 3", tag("y = 2x + 3"), True),
    ("y = 2x + 3", tag("y = 3x + 2"), False),
    ("a = 1, b = 2", tag("a = 1, b = 2"), True),
    ("3", tag("4 = 3 = x"), False),
    ("4", tag(r"\frac{6}{2} = 4"), False),
]

SEVERAL = [
    ("3", tag("1 or 2 or 3"), False),
    ("3", "1 or 2 or 3", False),
    ("3", tag("3 or 4"), False),
    ("3", tag(r"3 \text{ or } 4"), False),
    ("3", tag("2, 3"), False),
    ("3", tag(r"\pm 3"), False),
    ("3", rf"{T}<answer>3</answer> or maybe <answer>4</answer>", False),
    ("3", f"{T}<answer>4</answer><answer>3</answer>", False),
    ("3", f"{T}<answer>3</answer>\n<answer> 3 </answer>", True),
    ("3", r"\boxed{2} \boxed{3}", False),
    ("3", r"$2$ or $3$", False),
    ("1, 2, 3", tag("1 or 2 or 3"), True),
    (r"\pm 3", tag("3, -3"), True),
    ("-3, 3", tag(r"\pm 3"), True),
    ("2, 3", tag(r"x = 2 \text{ or } x = 3"), True),
    ("3", f"{T}The answer is 3 or 4.", False),
    ("3, 4", f"{T}The answer is 3 or 4.", True),
    ("3", f"{T}The answer is 3, and she is happy.", True),
]

SETS = [
    (r"\{1, 2, 3\}", tag(r"\{3, 2, 1\}"), True),
    (r"\{1, 2, 3\}", tag(r"\{1, 2\}"), False),
    (r"\{1, 2, 3\}", tag("1, 2, 3"), True),
    ("1, 2, 3", tag("3, 2, 1"), True),
    ("1, 2, 3", tag("1, 2, 4"), False),
    (r"\emptyset", tag(r"\varnothing"), True),
    (r"\{-1, 1\}", tag(r"\{1, -1\}"), True),
    (r"\{-1, 1\}", tag(r"\{1\}"), False),
    ("(1, 2)", tag("(1, 2)"), True),
    ("(1, 2)", tag("(2, 1)"), False),
]

INTERVALS = [
    ("[1, 2)", tag("[1, 2)"), True),
    ("[1, 2)", tag("[1, 2]"), False),
    (r"(-\infty, 3]", tag(r"(-\infty,3]"), True),
    (r"(1,2)\cup(3,4)", tag(r"(3,4)\cup(1,2)"), True),
    (r"(1,2)\cup(3,4)", tag(r"(1,2)\cup(3,5)"), False),
    ("[0, 1]", tag("[0,1]"), True),
    ("[0, 1]", tag("(0,1)"), False),
    (r"(-\infty, \infty)", tag(r"(-\infty,\infty)"), True),
]

UNITS = [
    ("5", tag("5 cm"), True),
    ("5", tag("6 cm"), False),
    ("5", tag(r"5 \text{ cm}"), True),
    ("12", tag(r"12\text{ meters}"), True),
    ("12", tag(r"13\text{ meters}"), False),
    ("30", tag(r"30^\circ"), True),
    ("30", tag("30°"), True),
    ("30", tag("40°"), False),
    ("20", tag(r"\$20"), True),
    ("20", tag(r"\$25"), False),
    ("3", f"{T}It takes 3 hours.", True),
    ("3", f"{T}It takes 4 hours.", False),
]

PERCENT = [
    (r"28\%", "28 percent", True),
    (r"28\%", "29 percent", False),
    (r"28\%", tag(r"28\%"), True),
    (r"28\%", tag("28%"), True),
    (r"28\%", tag(r"27\%"), False),
    ("28", tag(r"28\%"), True),
    (r"50\%", f"{T}The discount is 50 percent.", True),
    (r"50\%", f"{T}The discount is 40 percent.", False),
    (r"12.5\%", tag(r"12.5\%"), True),
    (r"12.5\%", tag(r"12\%"), False),
]

GSM8K = [
    ("18", "She sells 16 - 3 - 4 = 9 eggs and earns 9 * 2 = 18 dollars.\n#### 18", True),
    ("18", "She sells 16 - 3 - 4 = 9 eggs and earns 9 * 2 = 17 dollars.\n#### 17", False),
    ("18", "Janet earns 9 * 2 = 18 dollars.\nA: 18", True),
    ("18", "Janet earns 9 * 2 = 16 dollars.\nA: 16", False),
    ("18", "Janet earns $18 a day.\nA: 18\n\nQ: Tom has 3 apples and eats 1. How many are left?", True),
    ("18", "Janet earns $16 a day.\nA: 16\n\nQ: Tom has 3 apples and eats 1. How many are left? 18", False),
    ("1234", "So the total is 1,234.\n#### 1,234", True),
    ("1234", "So the total is 1,243.\n#### 1,243", False),
    ("70000", "The profit is 200000 - 130000 = 70000.\n#### 70000", True),
    ("70000", "The profit is 200000 - 120000 = 80000.\n#### 80000", False),
    ("3", "He needs 3 bolts.\nAnswer: 3", True),
    ("3", "He needs 4 bolts.\nAnswer: 4", False),
    ("5", f"{T}#### 5", True),
    ("5", f"{T}#### 6", False),
    ("20", "Each box holds 5, so 4 boxes hold 20 items.\n#### $20", True),
]

MATH_LINES = [
    ("12", "Adding gives 12.\nFinal Answer: The final answer is $12$. I hope it is correct.", True),
    ("12", "Adding gives 13.\nFinal Answer: The final answer is $13$. I hope it is correct.", False),
    (r"\frac{1}{2}", r"Final Answer: The final answer is $\frac{1}{2}$. I hope it is correct.", True),
    (r"\frac{1}{2}", r"Final Answer: The final answer is $\frac{1}{3}$. I hope it is correct.", False),
    ("(3, 4)", "Final Answer: The final answer is $(3,4)$. I hope it is correct.", True),
    ("(3, 4)", "Final Answer: The final answer is $(4,3)$. I hope it is correct.", False),
    ("5", "The final answer is 5.", True),
    ("5", "The final answer is 6.", False),
    (r"2\pi", r"The final answer is $2\pi$", True),
    (r"2\pi", r"The final answer is $\pi$", False),
    ("7", r"Therefore, the final answer is: $\boxed{7}$.", True),
    ("7", r"Therefore, the final answer is: $\boxed{8}$.", False),
]

FORMS = [
    ("0.75", tag(r"\frac{3}{4}"), True),
    ("0.75", tag(r"\frac{3}{5}"), False),
    ("2^{10}", tag("1024"), True),
    ("2^{10}", tag("1000"), False),
    (r"\sqrt{8}", tag(r"2\sqrt{2}"), True),
    ("1.5", tag(r"\frac{3}{2}"), True),
    ("1.5", tag("1.6"), False),
    ("-0.5", tag(r"-\frac{1}{2}"), True),
    ("-0.5", tag(r"\frac{1}{2}"), False),
    ("3+2i", tag("3 + 2i"), True),
    ("3+2i", tag("3 - 2i"), False),
    ("(1, -2)", tag("(1,-2)"), True),
    ("(1, -2)", tag("(-2, 1)"), False),
    ("(2, 5]", tag(r"2 < x \le 5"), True),
    ("(2, 5]", tag(r"2 \le x < 5"), False),
    ("0.0003", tag("0.0002"), False),
    ("0.0003", tag(r"3 \times 10^{-4}"), True),
    ("2.5", tag(r"2.5\text{ kg}"), True),
    ("2.5", tag(r"3.5\text{ kg}"), False),
    ("60", tag(r"60 \text{ mph}"), True),
    ("0.28", tag(r"28\%"), True),
]

CHAT = [
    ("15", "To find the answer, we add 7 and 8 to get 15.", True),
    ("15", "To find the answer, we add 7 and 8 to get 16.", False),
    ("6", "**Answer:** 6", True),
    ("6", "**Answer:** 7", False),
    ("24", "The final answer is **24**.", True),
    ("24", "The final answer is **25**.", False),
    ("100", f"{T}Therefore, there are 100 students.", True),
    ("100", f"{T}Therefore, there are 99 students.", False),
    ("10", f"{T}The total is 4 + 5 = 10.", False),
    ("9", f"{T}The total is 4 + 5 = 9.", True),
    ("5", f"{T}The answer is 4 or 5.", False),
    ("4, 5", f"{T}The answers are $4$ and $5$.", True),
    ("7", rf"{T}The final answer is $\boxed{{7}}$", True),
    (r"75\%", f"{T}About 75% of them passed.", True),
    (r"75\%", f"{T}About 70% of them passed.", False),
    ("45", "Total = 15 * 3 = 45\n#### 45", True),
    ("45", "Total = 15 * 3 = 46\n#### 46", False),
    ("8", "A: 8", True),
    ("8", "A: The answer is 9.", False),
    ("11", "Q: What is 5 + 6?\nA: 5 + 6 = 11", True),
    ("11", "Q: What is 5 + 6?\nA: 5 + 6 = 12", False),
]

NOTHING = [
    ("5", f"{T}", False),
    ("5", "<think>the answer is 5 but I am still", False),
    ("5", "I do not know.", False),
    ("5", tag(""), False),
    ("5", "", False),
]

CASES = (TAGGED + SENTENCES + UNTAGGED + BOXED + INEQUALITIES + TINY + CHAINS + SEVERAL + SETS + INTERVALS
         + UNITS + PERCENT + GSM8K + MATH_LINES + FORMS + CHAT + NOTHING)


def _id(case: tuple[str, str, bool]) -> str:
    gold, completion, label = case
    return f"{gold}|{completion.replace(T, '')[-40:]}|{label}"


@pytest.fixture(scope="module")
def acc():
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return accuracy_reward()


def test_there_are_enough_labelled_cases():
    assert len(CASES) >= 200
    assert len({(g, c) for g, c, _ in CASES}) == len(CASES)  # no row twice
    assert 0.35 < sum(label for *_, label in CASES) / len(CASES) < 0.65  # as many wrong as right


@pytest.mark.parametrize(("gold", "completion", "label"), CASES, ids=[_id(c) for c in CASES])
def test_accuracy_agrees_with_the_label(acc, gold, completion, label):
    assert acc(completion, answer=gold) == float(label)


def _plain_math_verify(gold: str, text: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(text)))


def _answer_text(completion: str) -> str:
    """What a plain grader is given as the prediction: the last <answer> tag's content, else the text."""
    if "</answer>" in completion:
        return completion.rsplit("</answer>", 1)[0].rsplit("<answer>", 1)[-1]
    return completion


def _in_dollars(text: str) -> str:
    """A short bare answer as LaTeX math-verify reads ("\\pi" alone is not extracted; "$\\pi$" is)."""
    if "$" in text or "\\boxed" in text or "\\fbox" in text or "\n" in text or len(text) > 40:
        return text
    return f"${text}$"


BASELINES = {
    "whole completion": lambda gold, completion: _plain_math_verify(gold, completion),
    "answer text": lambda gold, completion: _plain_math_verify(gold, _answer_text(completion)),
    "answer text, both in $…$": lambda gold, completion: _plain_math_verify(
        f"${gold}$", _in_dollars(_answer_text(completion))),
}


def test_defaults_agree_with_the_labels_more_than_math_verify(acc):
    """Both graders on every row: r1's defaults against plain ``verify(parse(gold), parse(pred))``, with
    pred the whole completion, the <answer> content (else the text), or that put in $…$ when short."""
    ours = sum((acc(c, answer=g) == 1.0) == label for g, c, label in CASES)
    theirs = {name: sum(grade(g, c) == label for g, c, label in CASES) for name, grade in BASELINES.items()}
    # measured (math-verify 0.9): 247 of 247; math-verify 161, 183 and 216. Its misses: chains, tiny
    # decimals, listed values, competing tags, inequalities against intervals, GSM8K continuations,
    # "To find the answer, we add 7 and 8 to get 15".
    assert ours == len(CASES)
    assert ours > max(theirs.values()), theirs
    assert max(theirs.values()) <= len(CASES) - 20, theirs


# ---- strictness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("completion", "tag_pred", "boxed_pred", "any_pred"), [
    (tag("5"), "5", "5", "5"),
    (rf"{T}So \boxed{{5}}.", None, "5", "5"),
    (f"{T}The answer is 5.", None, None, "5"),
    ("She has 5.\n#### 5", None, None, "5"),
    (rf"{T}<answer>The answer is $5$.</answer> \boxed{{6}}", "5", "5", "5"),  # the tag wins
])
def test_extract_modes(completion, tag_pred, boxed_pred, any_pred):
    got = [extract_pred(completion, {"answer": "5"}, extract=mode) for mode in ("tag", "boxed", "any")]
    assert got == [tag_pred, boxed_pred, any_pred]


def test_extract_is_a_reward_parameter():
    completion = f"{T}The answer is 5."
    assert accuracy_reward(extract="any")(completion, answer="5") == 1.0
    assert accuracy_reward(extract="boxed")(completion, answer="5") == 0.0
    with pytest.raises(ValueError, match="extract must be one of"):
        accuracy_reward(extract="loose")


# ---- pred and the reason for a 0 ----------------------------------------------------------------


@pytest.mark.parametrize(("completion", "pred"), [
    (tag("x = 4 = 3"), "x = 4 = 3"),
    ("28 percent", r"28\%"),
    ("1 or 2 or 3", "1 or 2 or 3"),
    (r"\boxed{1}, \boxed{2}, \boxed{3}", "1,2,3"),
    (f"{T}no number here", None),
    (f"{T}<answer>3</answer><answer>4</answer>", None),
])
def test_pred_is_on_every_scored_record(completion, pred):
    out = score_record({"completion": completion, "answer": "3"}, resolve(["accuracy"]))
    assert "pred" in out and out["pred"] == pred


@pytest.mark.parametrize(("completion", "why"), [
    (tag("x = 4 = 3"), "the equation chain asserts 4 = 3"),
    (f"{T}<answer>3</answer><answer>4</answer>", "2 different <answer> tags"),
])
def test_refusals_say_why(acc, completion, why):
    value = acc(completion, answer="3")
    assert value == 0.0 and value.why == why


# ---- answers math-verify stalls on: 0 at once, with the reason and the pred ----------------------


@pytest.mark.parametrize(("pred", "reason"), [
    (r"\sum_{k=1}^{10^{12}} k^{k}", "sum or product of more than"),
    (r"\prod_{k=1}^{10^{9}} k^{k}", "sum or product of more than"),
    (r"(\frac{10^{10}}{1})!", "more than 1,000,000 digits"),
    (r"10^{\frac{10^{10}}{1}}", "more than 1,000,000 digits"),
    (r"\int_0^1 e^{x^{x^{x}}}dx", "integral"),
    (r"\iint_D e^{x^{y^{x}}}\,dA", "integral"),
])
def test_stalling_answers_score_zero_at_once_with_a_reason(pred, reason):
    from r1cli.scoring import score_records

    records = [{"completion": tag("12"), "answer": "12"}, {"completion": tag(pred), "answer": "12"}]
    start = time.perf_counter()
    out = list(score_records(records, resolve(["accuracy"]), workers=0))
    assert time.perf_counter() - start < 2.0  # math-verify alone: 5 s (its timeout) or more
    assert out[1]["rewards"] == {"accuracy": 0.0}
    assert out[1]["pred"] == pred
    assert reason in out[1]["score_error"]


@pytest.mark.parametrize("pred", [r"\sum_{k=1}^{100} k", r"\prod_{k=1}^{4} k", "2^{10}", r"\frac{10^{6}}{2}"])
def test_small_sums_and_powers_are_still_computed(acc, pred):
    from r1cli.verifiers.math import math_equal

    value = {r"\sum_{k=1}^{100} k": "5050", r"\prod_{k=1}^{4} k": "24", "2^{10}": "1024", r"\frac{10^{6}}{2}": "500000"}
    assert math_equal(value[pred], pred) is True
