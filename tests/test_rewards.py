r"""The reward registry, every reward (true / false / None and adversarial rows), and the TRL adapter.

Answer equivalence itself (math-verify) is tabled in test_math_equivalence.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from r1cli import rewards
from r1cli.errors import BadInput, R1Error, UnknownReward
from r1cli.rewards import Reward, describe, missing_fields, parse_spec, resolve, score_record
from r1cli.rewards.accuracy import extract_pred, judge_math, math_equal
from r1cli.rewards.language import language_reward, language_share, prompt_language
from r1cli.rewards.length import length_reward
from r1cli.rewards.repetition import repetition_reward
from r1cli.rewards.trl import to_trl

MB = 1_000_000
BIG = "word " * (MB // 5)  # 1 MB of text
NESTED_FRAC = "1"
for _ in range(50):
    NESTED_FRAC = "\\frac{" + NESTED_FRAC + "}{2}"
TOWER = "10^{10^{10^{10}}}"


def same(value: float | None, expected: float | None) -> bool:
    """`value` is None exactly when `expected` is, and otherwise equal to it up to rounding."""
    return value is None if expected is None else value == pytest.approx(expected)


def fn(name: str, **params):
    """The built reward function `name` with `params`."""
    (reward,) = resolve([name], {name: params} if params else None)
    return reward.fn


# ---- registry --------------------------------------------------------------------------------


def test_registered_names():
    assert {"accuracy", "format", "tags", "language", "length", "repetition"} <= set(rewards.names())


def test_importing_rewards_is_cheap():
    heavy = "('math_verify', 'sympy', 'langdetect', 'torch')"
    code = f"import json, sys, r1cli.rewards; print(json.dumps([m for m in {heavy} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("format:0.5", ("format", 0.5)),
        ("accuracy", ("accuracy", 1.0)),
        (" tags : 2 ", ("tags", 2.0)),
        ("length:-1", ("length", -1.0)),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["format:abc", ":1", "", "format:", "format:inf", "format:nan"])
def test_parse_spec_rejects(spec):
    with pytest.raises(R1Error):
        parse_spec(spec)


def test_unknown_reward_lists_names_and_suggests():
    with pytest.raises(UnknownReward) as exc:
        resolve(["acuracy"])
    assert "accuracy, " in str(exc.value) and exc.value.hint == "did you mean 'accuracy'?"


@pytest.mark.parametrize(
    ("specs", "params", "message"),
    [
        (["format"], {"format": {"strictly": True}}, "no parameter 'strictly'"),
        (["format"], {"length": {"kind": "overlong"}}, "not selected: length"),
        (["format", "format:2"], None, "selected twice"),
        (["length"], {"length": {"kind": "short"}}, "'short' is not one of: cosine, overlong"),
        (["length"], {"length": {"max_len": "lots"}}, "cannot read 'lots' as int"),
        (["repetition"], {"repetition": {"max_penalty": 1.0}}, "max_penalty must be 0 or negative"),
        (["language"], {"language": {"language": "klingon"}}, "unsupported language"),
        (["accuracy"], {"accuracy": {"fallback": "first-number"}}, "not one of: none, last-number"),
    ],
)
def test_resolve_rejects(specs, params, message):
    with pytest.raises(R1Error, match=message):
        resolve(specs, params)


def test_resolve_coerces_text_params():
    (overlong,) = resolve(["length:0.5"], {"length": {"kind": "overlong", "max_len": "100", "cache": "50"}})
    assert overlong.weight == 0.5 and overlong.fn("x", completion_tokens=75) == -0.5
    (lenient,) = resolve(["format"], {"format": {"strict": "false"}})
    assert lenient.fn("ok <think>a</think><answer>b</answer>") == 1.0


def test_describe_lists_params_with_defaults():
    table = {d["name"]: d for d in describe()}
    fallback = {"name": "fallback", "type": "Literal['none', 'last-number']", "default": "none"}
    assert fallback in table["accuracy"]["params"]
    assert {"name": "strict", "type": "bool", "default": True} in table["format"]["params"]
    assert all(d["summary"] for d in table.values())


@pytest.mark.parametrize(
    ("record", "missing"),
    [
        ({"completion": "x", "answer": "4"}, []),
        ({"completion": "x"}, [("answer", "accuracy")]),
        ({"completion": "x", "answer": None}, [("answer", "accuracy")]),
        ({"completion": "x", "task": "countdown", "numbers": [1, 2]}, [("target", "accuracy")]),
        ({"completion": "x", "task": "code"}, [("tests", "accuracy")]),
        ({"answer": "4"}, [("completion", "accuracy"), ("completion", "format")]),
    ],
)
def test_missing_fields(record, missing):
    assert missing_fields(record, resolve(["accuracy", "format"])) == missing


def test_score_record_adds_rewards_and_keeps_the_record():
    completion = "<think>2+2</think><answer>4</answer>"
    record = {"id": "p1", "src": "gsm8k", "answer": "4", "completion": completion, "pred": "stale"}
    out = score_record(record, resolve(["accuracy:2", "format:0.5", "language"]))
    assert out["rewards"] == {"accuracy": 1.0, "format": 1.0, "language": None}
    assert out["reward"] == 2.5 and out["pred"] == "4" and out["src"] == "gsm8k"
    assert record["pred"] == "stale" and "rewards" not in record  # a new dict


@pytest.mark.parametrize(
    ("record", "reward", "pred"),
    [
        ({"answer": "", "completion": "<answer>4</answer>"}, None, "4"),  # all rewards null → null total
        ({"answer": "4", "completion": "no answer"}, 0.0, None),  # no pred key
        ({"answer": "4", "completion": [{"role": "assistant", "content": "\\boxed{4}"}]}, 1.0, "4"),  # chat completion
        ({"answer": "4", "completion": None}, None, None),
        ({"answer": "4", "completion": ""}, 0.0, None),
    ],
)
def test_score_record_rows(record, reward, pred):
    out = score_record(record, resolve(["accuracy"]))
    assert out["reward"] == reward and out.get("pred") == pred


def _score_in_worker(record):
    return score_record(record, resolve(["accuracy", "format"]))


def test_score_record_in_a_process_pool_worker():
    """Workers are where `r1 score` runs rewards: math-verify's signal timeouts work in their main thread."""
    records = [{"answer": "1/2", "completion": f"<think>x</think><answer>{p}</answer>"} for p in ("0.5", "0.6")]
    with ProcessPoolExecutor(max_workers=1) as pool:
        scored = list(pool.map(_score_in_worker, records))
    assert [s["rewards"]["accuracy"] for s in scored] == [1.0, 0.0]


# ---- accuracy: math ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("<think>2+2</think><answer>4</answer>", "4", 1.0),
        ("<think>2+2</think><answer>5</answer>", "4", 0.0),
        (r"so the answer is \boxed{\frac{1}{2}}.", "0.5", 1.0),
        (r"<answer>The answer is $\boxed{033}$</answer>", "33", 1.0),
        (r"\boxed{1} then \boxed{2}", "2", 0.0),  # two boxes: the set {1, 2}, as math-verify joins them
        (r"\boxed{1} then \boxed{2}", r"\{1, 2\}", 1.0),
        ("<answer>1</answer> <answer>2</answer>", "2", 0.0),  # competing answer blocks: neither counts
        ("<answer>2</answer> <answer> 2</answer>", "2", 1.0),  # the same answer repeated is one answer
        ("<think><think>3</think></think><answer>3</answer>", "3", 1.0),  # nested think: the answer is still judged
        ("<think>I think it is \\boxed{4}</think>", "4", 1.0),  # a box inside the reasoning is still a final answer
        ("the answer is 4", "4", 1.0),  # no <answer>, no \boxed{}: extracted as math-verify does
        ("", "4", 0.0),
        (r"\boxed{\frac{1}{2}", "1/2", 1.0),  # unbalanced \boxed{: math-verify still reads the fraction
        (r"\boxed{4}", "", None),  # empty gold
        (r"\boxed{4}", r"\frac{", None),  # unparseable gold
        ("no answer at all", "}{", None),  # unparseable gold wins over a missing pred
        (r"\boxed{4}", None, None),
        (BIG, "4", 0.0),  # 1 MB without an answer
        ("<answer>" + "1+" * (MB // 2) + "1</answer>", "4", 0.0),  # 1 MB answer: judged wrong unparsed
        (r"\boxed{1}" * (MB // 9), "1", 1.0),  # 1 MB of boxes
        (f"<answer>{NESTED_FRAC}</answer>", "2^{-50}", 0.0),  # 50-deep \frac: compared as text (braces too deep)
        (f"<answer>{NESTED_FRAC}</answer>", NESTED_FRAC, 1.0),  # … and the same text is right
        (f"<answer>{TOWER}</answer>", TOWER, 1.0),  # identical strings compare equal without evaluating
        (r"\boxed{2^{2^{3}}}", "256", 1.0),  # a small tower is computed
    ],
)
def test_accuracy_math(completion, answer, expected):
    assert fn("accuracy")(completion, answer=answer) == expected


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("<think>...</think> She has 1,234 apples.", "1234", 1.0),
        ("<think>the answer is 7</think> so 8", "8", 1.0),
        ("<think>the answer is 7</think> no number after", "7", 0.0),  # only the text after the reasoning
        ("nothing", "3", 0.0),
        (r"\boxed{5} and 6", "5", 1.0),  # a box wins over the last number
    ],
)
def test_accuracy_last_number_fallback(completion, answer, expected):
    assert fn("accuracy", fallback="last-number")(completion, answer=answer) == expected


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        (TOWER, "10", 0.0),  # 10^(10^(10^10)): sympy would try to compute it
        ("10^{10^{7}}", "10", 0.0),  # 10 million digits
        ("9^{9^{9}}", "12", 0.0),
        ("2^{3^{4^{5}}}", "12", 0.0),
        (r"\left(10^{10}\right)^{10^{10}}", "12", 0.0),
        ("10^{-10^{7}}", "0", 0.0),  # as big a denominator
        ("(10^{10})!", "12", 0.0),
        ("1000000!", "12", 0.0),  # 5.6 million digits
        ("1e1000000000", "12", 0.0),  # read as 1\times10^{1000000000}
        ("\\frac{" * 18 + "1" + "}{2}" * 18, "1", 0.0),  # a nested \frac: math-verify's time doubles per level
        ("1", NESTED_FRAC, 0.0),  # … as the gold
        ("12", TOWER, 0.0),
        (TOWER, TOWER, 1.0),
        (NESTED_FRAC, NESTED_FRAC, 1.0),
    ],
)
def test_accuracy_pathological_inputs_are_judged_at_once(pred, answer, expected):
    """Answers math-verify would spend its whole timeout on (5 s each) are compared as text instead."""
    acc = fn("accuracy")
    acc(r"\boxed{1}", answer="1")  # math-verify imported
    start = time.perf_counter()
    assert acc(f"<answer>{pred}</answer>", answer=answer) == expected
    assert time.perf_counter() - start < 0.5


def test_accuracy_verdicts_are_cached():
    math_equal("17/34", r"\frac{1}{2}")
    hits = judge_math.cache_info().hits
    start = time.perf_counter()
    assert math_equal("17/34", r"\frac{1}{2}") is True
    assert judge_math.cache_info().hits == hits + 1 and time.perf_counter() - start < 0.01


def test_math_verify_runs_without_timeouts_in_a_thread():
    """In a non-main thread signal.alarm is unavailable: timeouts are disabled instead of raising."""
    results = []
    thread = threading.Thread(target=lambda: results.append(math_equal("2/3", r"\frac{4}{6}", 3)))
    thread.start()
    thread.join()
    assert results == [True]


def test_an_outer_alarm_survives_math_verify():
    """math-verify re-arms SIGALRM; a per-record limit armed by the caller must keep running."""
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 2.0)
        assert math_equal("x^2-4", "(x-2)(x+2)", 4) is True
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining < 2.0
        time.sleep(remaining + 0.1)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize(
    ("completion", "record", "pred"),
    [
        (r"<answer>\boxed{7}</answer>", {}, "7"),
        ("<answer>(1 + 2) * 3 = 9</answer>", {"task": "countdown", "target": 9}, "(1 + 2) * 3"),
        ("The answer is (C).", {"task": "choice"}, "C"),
        ("print(1)", {"task": "code"}, None),
        ("nothing", {}, None),
    ],
)
def test_extract_pred(completion, record, pred):
    assert extract_pred(completion, record) == pred


# ---- accuracy: countdown, choice, code, unknown task -----------------------------------------------


@pytest.mark.parametrize(
    ("completion", "numbers", "target", "expected"),
    [
        ("<answer>(55 - 36) * 2</answer>", [55, 36, 2], 38, 1.0),
        ("<answer>(55 - 36) * 2 = 38</answer>", [55, 36, 2], 38, 1.0),  # trailing "= target" stripped
        (r"\boxed{(55 - 36) \times 2}", [55, 36, 2], "38", 1.0),  # LaTeX operator, target as text
        ("<answer>55 - 36 - 2</answer>", [55, 36, 2], 38, 0.0),  # wrong value
        ("<answer>(55 - 36) * 2 * 1</answer>", [55, 36, 2], 38, 0.0),  # a number not given
        ("<answer>55 + 36</answer>", [55, 36, 2], 91, 0.0),  # a number left unused
        ("<answer>(55 - 36) * 2 = 39</answer>", [55, 36, 2], 38, 0.0),  # "= 39" is not stripped: not an expression
        ("<answer>__import__('os')</answer>", [1], 1, 0.0),
        ("no answer", [55, 36, 2], 38, 0.0),
        ("<answer>" + "(" * 500 + "1" + ")" * 500 + "</answer>", [1], 1, 0.0),  # nesting beyond the verifier's cap
        ("<answer>1</answer>", None, 1, None),
        ("<answer>1</answer>", [1], None, None),
        ("<answer>1</answer>", [1], "seven", None),
    ],
)
def test_accuracy_countdown(completion, numbers, target, expected):
    assert fn("accuracy")(completion, task="countdown", numbers=numbers, target=target) == expected


@pytest.mark.parametrize(
    ("completion", "answer", "choices", "expected"),
    [
        ("<answer>B</answer>", "B", None, 1.0),
        ("<answer>(b)</answer>", "B", None, 1.0),
        (r"\boxed{\text{(C)}}", "(C)", None, 1.0),
        ("<think>A or C?</think> The answer is (C).", "c", None, 1.0),
        ("Answer: D", "D", None, 1.0),
        ("<answer>D. 42</answer>", "D", None, 1.0),
        ("<answer>42</answer>", "42", ["41", "42"], 1.0),  # gold and pred given as choice text
        ("<answer>A</answer>", "B", None, 0.0),
        ("<answer>E</answer>", "B", ["1", "2", "3", "4"], 0.0),  # not a valid choice letter
        ("I cannot decide", "B", None, 0.0),
        ("<answer>B</answer>", "maybe", None, None),  # gold is not a letter
        ("<answer>B</answer>", None, None, None),
    ],
)
def test_accuracy_choice(completion, answer, choices, expected):
    assert fn("accuracy")(completion, task="choice", answer=answer, choices=choices) == expected


def test_accuracy_code_delegates_to_the_code_reward(monkeypatch):
    seen = {}

    def fake_code_factory():
        def code(completion, tests=None, **_):
            seen.update(completion=completion, tests=tests)
            return 0.5

        return code

    monkeypatch.setitem(rewards._REGISTRY, "code", rewards._Entry("code", fake_code_factory, ("tests",), "fake"))
    tests = [{"input": "1", "output": "1"}]
    assert fn("accuracy")("```python\nprint(1)\n```", task="code", tests=tests) == 0.5
    assert seen == {"completion": "```python\nprint(1)\n```", "tests": tests}


def test_accuracy_code_without_a_code_reward(monkeypatch):
    monkeypatch.delitem(rewards._REGISTRY, "code", raising=False)
    monkeypatch.delitem(rewards.REWARDS.builtin, "code")  # a build of r1cli without the code reward
    with pytest.raises(R1Error, match="needs the `code` reward"):
        fn("accuracy")("print(1)", task="code", tests=[])


def test_accuracy_unknown_task():
    with pytest.raises(BadInput, match="unknown task 'maths'"):
        fn("accuracy")("<answer>1</answer>", task="maths", answer="1")


# ---- format and tags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "prompt", "strict", "lenient"),
    [
        ("<think>2+2=4</think><answer>4</answer>", None, 1.0, 1.0),
        ("\n <think>\nreason\n</think>\n\n<answer>\n4\n</answer>\n", None, 1.0, 1.0),
        ("Sure! <think>x</think><answer>4</answer>", None, 0.0, 1.0),  # text before
        ("<think>x</think><answer>4</answer> Hope this helps.", None, 0.0, 1.0),  # text after
        ("<think>x</think> between <answer>4</answer>", None, 0.0, 0.0),  # text between
        ("x</think><answer>4</answer>", "Assistant: <think>", 1.0, 1.0),  # opening tag in the prompt
        ("x</think><answer>4</answer>", [{"role": "user", "content": "Hi <think>"}], 1.0, 1.0),
        ("x</think><answer>4</answer>", "Assistant:", 0.0, 1.0),
        ("<think>a<think>b</think></think><answer>4</answer>", None, 0.0, 0.0),  # nested think
        ("<think>a</think><think>b</think><answer>4</answer>", None, 0.0, 0.0),  # two think blocks
        ("<think>a</think><answer>4</answer><answer>5</answer>", None, 0.0, 0.0),  # two answers
        ("<answer>4</answer><think>a</think>", None, 0.0, 0.0),  # wrong order
        ("<think>a</think>", None, 0.0, 0.0),
        ("<think>x</think><answer>4", None, 0.0, 0.0),  # unclosed answer
        ("", None, 0.0, 0.0),
        ("<think>" + BIG + "</think><answer>4</answer>", None, 1.0, 1.0),
        (BIG, None, 0.0, 0.0),
    ],
)
def test_format(completion, prompt, strict, lenient):
    assert fn("format")(completion, prompt=prompt) == strict
    assert fn("format", strict=False)(completion, prompt=prompt) == lenient


@pytest.mark.parametrize(
    ("completion", "prompt", "expected"),
    [
        ("<think>x</think><answer>4</answer>", None, 1.0),
        ("<think>x</think>4", None, 0.5),
        ("<think>x</think><answer>4", None, 0.75),
        ("x</think><answer>4</answer>", None, 0.75),
        ("x</think><answer>4</answer>", "Assistant: <think>", 1.0),
        ("<think>a</think><think>b</think><answer>4</answer>", None, 0.5),  # two think blocks
        ("<think>a<think>b</think></think><answer>4</answer>", None, 0.5),  # nested think
        ("", None, 0.0),
        (BIG, None, 0.0),
    ],
)
def test_tags(completion, prompt, expected):
    assert fn("tags")(completion, prompt=prompt) == expected


@pytest.mark.parametrize(("name", "completion", "expected"), [
    ("format", " 2+2=4 </think><answer>4</answer>", 1.0),
    ("format", "<think> 2+2=4 </think><answer>4</answer>", 0.0),  # a second <think> after the prefilled one
    ("tags", " 2+2=4 </think><answer>4</answer>", 1.0),
    ("tags", " 2+2=4", 0.25),
])
def test_a_records_prefill_is_part_of_the_answer(name, completion, expected):
    # `r1 rollout --prefill '<think>'` records the prefill; the prompt itself is the unrendered one
    assert fn(name)(completion, prompt="Compute 2 + 2.", prefill="<think>") == expected


# ---- language ---------------------------------------------------------------------------------------

EN = "First we compute the sum of the two roots. Then we check that the product is six."
ZH = "首先我们计算两个根的和。然后检查乘积是六。"
FR = "Nous calculons la somme des deux racines. Ensuite nous vérifions que le produit vaut six."


@pytest.mark.parametrize(
    ("completion", "language", "expected"),
    [
        (f"<think>{EN}</think><answer>4</answer>", "en", 1.0),
        (f"<think>{ZH}</think><answer>4</answer>", "en", 0.0),
        (f"<think>{ZH}</think><answer>4</answer>", "zh", 1.0),
        (f"<think>{FR}</think><answer>4</answer>", "en", 0.0),
        (f"<think>{FR}</think><answer>4</answer>", "fr", 1.0),
        (f"<think>{EN} {FR}</think>", "en", 17 / 32),  # 17 English words, 15 French
        (EN, "en", 1.0),  # no think tags: the whole completion
        (f"<think>{EN}</think> 答案是四", "en", 1.0),  # only the reasoning counts
        (f"<think>{EN}\n```python\nprint('你好')\n```\n$\\text{{答案}}$ `变量`</think>", "en", 1.0),  # code and LaTeX dropped
        ("<think>设 x 为 sin A 的值，ABC 中 x=3。</think>", "zh", 1.0),  # variables, labels, function names dropped
        ("<think>まず、二つの数の和を計算します。</think>", "ja", 1.0),
        ("<think>먼저 두 수의 합을 계산합니다.</think>", "ko", 1.0),
        ("<think>Сначала вычислим сумму корней и произведение.</think>", "ru", 1.0),
        ("<think>$x^2 = 4$, 42</think><answer>2</answer>", "en", None),  # no words
        ("", "en", None),
        ("<think>Easy.</think>", "fr", 1.0),  # fewer than 3 words: the script alone decides
    ],
)
def test_language(completion, language, expected):
    assert same(fn("language", language=language)(completion), expected)


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("Compute the sum of the roots of the polynomial.", "en"),
        ("What is 2+2?", "en"),  # too short for langdetect: the default
        ("求函数 $f(x)=x^2$ 的最小值。", "zh"),
        (
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Quelle est la somme des angles ?"}],
            "fr",
        ),
        ("2+2の答えは何ですか？", "ja"),
        ("2 더하기 2는 무엇입니까?", "ko"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_prompt_language(prompt, language):
    assert prompt_language(prompt) == language


def test_language_follows_the_prompt_when_not_given():
    lang = fn("language")
    assert lang(f"<think>{ZH}</think>", prompt="求两个根的和。") == 1.0
    assert lang(f"<think>{ZH}</think>", prompt="Compute the sum of the two roots of the polynomial.") == 0.0


def test_language_is_deterministic_and_bounded_on_1mb():
    from r1cli.rewards.language import detect

    detect.cache_clear()
    first = language_share(EN + " " + FR, "en")
    detect.cache_clear()
    assert language_share(EN + " " + FR, "en") == first
    start = time.perf_counter()
    assert language_reward("en")(f"<think>{BIG}</think>") is not None
    assert time.perf_counter() - start < 5


# ---- length -----------------------------------------------------------------------------------------

RIGHT, WRONG = "<answer>4</answer>", "<answer>5</answer>"


@pytest.mark.parametrize(
    ("completion", "record", "expected"),
    [
        (RIGHT, {"completion_tokens": 0}, 1.0),  # correct and short: max_value_correct
        (RIGHT, {"completion_tokens": 500}, 0.75),
        (RIGHT, {"completion_tokens": 1000}, 0.5),  # correct at max_len: min_value_correct
        (RIGHT, {"completion_tokens": 5000}, 0.5),  # clamped beyond max_len
        (WRONG, {"completion_tokens": 0}, -1.0),  # wrong and short: min_value_wrong
        (WRONG, {"completion_tokens": 1000}, -0.5),  # wrong at max_len: max_value_wrong
        (RIGHT + " " * 3982, {}, 0.5),  # no completion_tokens: 4,000 characters / 4 = 1,000
        (RIGHT, {"answer": r"\frac{"}, None),  # unscorable correctness
        ("", {}, -1.0),
    ],
)
def test_length_cosine(completion, record, expected):
    assert same(fn("length")(completion, **{"answer": "4", **record}), expected)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(0, 0.0), (768, 0.0), (769, -1 / 256), (896, -0.5), (1024, -1.0), (1025, -1.0), (10**9, -1.0)],
)
def test_length_overlong(tokens, expected):
    overlong = fn("length", kind="overlong", max_len=1024, cache=256)
    assert overlong("x", completion_tokens=tokens) == pytest.approx(expected)


def test_length_overlong_counts_characters_without_tokens():
    assert length_reward(kind="overlong", max_len=1024, cache=256)("x" * 4 * 896) == pytest.approx(-0.5)
    assert length_reward(kind="overlong")(BIG) == -1.0


@pytest.mark.parametrize(
    "params", [{"kind": "overlong", "cache": 0}, {"kind": "overlong", "max_len": 10, "cache": 20}, {"max_len": 0}]
)
def test_length_rejects_params(params):
    with pytest.raises(R1Error):
        resolve(["length"], {"length": params})


# ---- repetition -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "params", "expected"),
    [
        ("the cat sat on the mat", {}, 0.0),
        ("go go go go go go", {}, -0.75),
        ("a b c a b c a b c", {}, -4 / 7),
        ("A B C a b c", {}, -0.25),  # lower-cased
        ("a b c a b c", {"max_penalty": -0.5}, -0.125),
        ("a b a b", {"ngram_size": 2}, -1 / 3),
        ("", {}, 0.0),
        ("too short", {}, 0.0),
        (BIG, {}, pytest.approx(-1.0, abs=1e-4)),
    ],
)
def test_repetition(completion, params, expected):
    assert fn("repetition", **params)(completion) == pytest.approx(expected)


def test_repetition_reward_direct():
    assert repetition_reward(ngram_size=1)("a a") == -0.5


# ---- TRL adapter ------------------------------------------------------------------------------------


def test_to_trl_batch_call():
    acc = to_trl(resolve(["accuracy"])[0])
    assert acc.__name__ == "accuracy"
    values = acc(
        prompts=["q1", "q2", "q3"],
        completions=[[{"role": "assistant", "content": r"\boxed{4}"}], "<answer>7</answer>", "x"],
        completion_ids=[[1, 2], [3], [4]],
        answer=["4", "6", r"\frac{"],
        trainer_state=object(),
        log_metric=lambda *a: None,
    )
    assert values == [1.0, 0.0, None]


def test_to_trl_passes_prompts_and_token_counts():
    fmt = to_trl(resolve(["format"])[0])
    assert fmt(prompts=["A: <think>", "A:"], completions=["x</think><answer>1</answer>"] * 2) == [1.0, 0.0]
    overlong = to_trl(resolve(["length"], {"length": {"kind": "overlong", "max_len": 4, "cache": 2}})[0])
    assert overlong(prompts=["p", "p"], completions=["a", "b"], completion_ids=[[1], [1, 2, 3]]) == [0.0, -0.5]
    # a dataset column named completion_tokens wins over completion_ids
    assert overlong(prompts=["p"], completions=["a"], completion_ids=[[1]], completion_tokens=[4]) == [-1.0]


def test_to_trl_returns_unweighted_values():
    (weighted,) = resolve(["format:0.25"])
    assert to_trl(weighted)(prompts=["p"], completions=["<think>a</think><answer>b</answer>"]) == [1.0]


def test_reward_dataclass_fields():
    reward = Reward(name="x", weight=1.0, fn=lambda c, **_: 1.0, needs=lambda r: ("a",) if r.get("t") else ())
    assert reward.fields({"t": 1}) == ("a",) and reward.fields({}) == ()
