"""Evaluation metrics against hand-computed tables: pass@k, majority vote, cons@k, bootstrap, summaries."""

from fractions import Fraction
from math import comb

import pytest

from r1cli.metrics import (
    Question, Sample, answers_equal, bootstrap_ci, default_ks, majority_vote, pass_at_k, score_question, summarize,
    text_equal,
)


def closed_form(n, c, k):
    """1 − C(n−c, k)/C(n, k), exactly."""
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64])
def test_pass_at_k_equals_the_closed_form(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(closed_form(n, c, k)), abs=1e-12), (n, c, k)


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (4, 1, 1, 0.25),
    (4, 1, 2, 0.5),  # 1 − C(3,2)/C(4,2) = 1 − 3/6
    (4, 2, 2, 5 / 6),  # 1 − C(2,2)/C(4,2) = 1 − 1/6
    (4, 0, 4, 0.0),
    (4, 4, 1, 1.0),
    (10, 3, 5, 11 / 12),  # 1 − C(7,5)/C(10,5) = 1 − 21/252
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    n, c, k = 2000, 7, 1000  # C(2000, 1000) ≈ 2e600: no float holds it
    assert pass_at_k(n, c, k) == pytest.approx(float(closed_form(n, c, k)), rel=1e-12)
    assert pass_at_k(n, 1, 1) == pytest.approx(1 / n)


@pytest.mark.parametrize(("n", "c", "k", "message"), [
    (4, 1, 5, "k must be between 1 and the number of samples"),
    (4, 1, 0, "k must be between 1"),
    (4, 5, 1, "need 0 ≤ correct ≤ samples"),
])
def test_pass_at_k_refuses(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(("a", "b", "equal"), [
    ("1/2", "0.5", True),
    ("1/2", r"\frac12", True),
    (r"\frac{1}{2}", r"\dfrac{1}{2}", True),
    ("0.5", "50\\%", True),
    ("033", "33", True),
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", True),
    ("1/2", "2", False),
    ("x+1", "1+x", True),
    ("\\text{Paris}", "\\text{Paris}", True),
])
def test_answers_equal(a, b, equal):
    assert answers_equal(a, b) is equal


@pytest.mark.parametrize(("preds", "equal", "labels", "counts", "winner"), [
    # equivalent answers written differently vote together
    (["1/2", "0.5", "3", r"\frac12"], answers_equal, [0, 0, 1, 0], [3, 1], 0),
    (["3", "1/2", "0.5", r"\frac12"], answers_equal, [0, 1, 1, 1], [1, 3], 1),
    # ties go to the class that appeared first
    (["7", "8", "8", "7"], answers_equal, [0, 1, 1, 0], [2, 2], 0),
    (["8", "7", "7", "8"], answers_equal, [0, 1, 1, 0], [2, 2], 0),
    (["2.0", "3", "2", "3"], answers_equal, [0, 1, 0, 1], [2, 2], 0),
    # no answer does not vote
    ([None, "5", None, ""], answers_equal, [None, 0, None, None], [1], 0),
    ([None, None], answers_equal, [None, None], [], None),
    # choice letters: by text, case-insensitive
    (["B", "b", "C"], text_equal, [0, 0, 1], [2, 1], 0),
])
def test_majority_vote(preds, equal, labels, counts, winner):
    votes = majority_vote(preds, equal)
    assert (votes.labels, votes.counts, votes.winner) == (labels, counts, winner)


def test_majority_vote_calls_equal_once_per_distinct_answer_and_class():
    calls = []

    def equal(a, b):
        calls.append((a, b))
        return a == b

    majority_vote(["1", "1", "2", "2", "1", "3"], equal)
    assert calls == [("1", "2"), ("1", "3"), ("2", "3")]


def S(correct, pred=None, **kw):
    return Sample(correct, pred, **kw)


@pytest.mark.parametrize(("samples", "task", "c", "pass1", "cons"), [
    ([S(1.0, "0.5"), S(1.0, "1/2"), S(0.0, "3"), S(0.0, "3")], "math", 2, 0.5, 1.0),  # 2 vs 2: first class wins
    ([S(0.0, "3"), S(1.0, "1/2"), S(1.0, r"\frac12"), S(1.0, "0.5")], "math", 3, 0.75, 1.0),
    ([S(0.0, "6"), S(0.0, "6"), S(1.0, "7"), S(0.0, None)], "math", 1, 0.25, 0.0),
    ([S(0.0, None), S(0.0, None)], "math", 0, 0.0, 0.0),
    ([S(None, "0.5"), S(1.0, "1/2"), S(0.0, "4")], "math", 1, 1 / 3, 1.0),  # the class is judged by a judged member
    ([S(1.0, "C"), S(0.0, "A"), S(1.0, "c")], "choice", 2, 2 / 3, 1.0),
    ([S(0.5, "x"), S(0.5, "x")], "code", 0, 0.0, 0.0),  # partial credit is not a pass
])
def test_score_question(samples, task, c, pass1, cons):
    score = score_question(Question(samples, task))
    assert (score.n, score.c, score.cons) == (len(samples), c, cons)
    assert score.pass1 == pytest.approx(pass1)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = [1.0, 0.0, 0.5, 0.25, 1.0, 0.0, 0.75, 0.5] * 5
    a = bootstrap_ci(values, seed=3)
    assert a == bootstrap_ci(values, seed=3)
    assert a != bootstrap_ci(values, seed=4)
    mean = sum(values) / len(values)
    assert a[0] < mean < a[1]
    few = bootstrap_ci(values[:8], seed=3)
    assert a[1] - a[0] < few[1] - few[0]  # more questions: a narrower interval
    wide = bootstrap_ci(values, level=0.99, seed=3)
    assert wide[0] <= a[0] and wide[1] >= a[1]
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    assert bootstrap_ci([]) is None


@pytest.mark.parametrize(("n", "ks"), [(1, [1]), (2, [1, 2]), (4, [1, 4]), (5, [1, 4, 5]), (16, [1, 4, 16]),
                                       (64, [1, 4, 16, 64]), (100, [1, 4, 16, 64, 100])])
def test_default_ks(n, ks):
    assert default_ks(n) == ks


QUESTIONS = [
    # gold 0.5: three equivalent right answers written differently, one wrong
    Question([S(1.0, "1/2", tokens=10, truncated=False, formatted=1.0),
              S(1.0, r"\frac12", tokens=20, truncated=False, formatted=1.0),
              S(1.0, "0.5", tokens=30, truncated=False, formatted=0.0),
              S(0.0, "3", tokens=40, truncated=True, formatted=0.0)], id="q1"),
    # gold 7: the majority (6) is wrong
    Question([S(0.0, "6", tokens=10, truncated=False), S(0.0, "6", tokens=10, truncated=False),
              S(1.0, "7", tokens=10, truncated=False), S(0.0, None, tokens=50, truncated=True)], id="q2"),
    # gold 2: a 2–2 tie, the right class first
    Question([S(1.0, "2"), S(0.0, "3"), S(0.0, "3"), S(1.0, "2.0")], id="q3"),
    # the gold does not parse: no sample could be judged
    Question([S(None, "1"), S(None, "1"), S(None, "2"), S(None, None)], id="q4"),
]


def test_summarize_hand_computed():
    m = summarize(QUESTIONS, [1, 2, 4], seed=0)
    assert m["questions"] == 3 and m["unscorable"] == 1 and m["samples"] == 4
    assert m["pass@1"] == pytest.approx((3 / 4 + 1 / 4 + 2 / 4) / 3)
    assert m["cons@4"] == pytest.approx(2 / 3)
    assert m["pass@2"] == pytest.approx((1.0 + 0.5 + 5 / 6) / 3)
    assert m["pass@4"] == pytest.approx(1.0)
    lo, hi = m["pass@1_ci"]
    assert 0.25 <= lo <= m["pass@1"] <= hi <= 0.75  # the per-question values are 0.75, 0.25, 0.5
    assert m["mean_tokens"] == pytest.approx(180 / 8)  # samples that carry a length
    assert m["truncated"] == pytest.approx(2 / 8)
    assert m["format"] == pytest.approx(0.5)
    assert m["answered"] == pytest.approx(11 / 12)
    assert list(m)[:6] == ["questions", "samples", "pass@1", "pass@1_ci", "cons@4", "pass@2"]


def test_summarize_default_ks_and_empty_rates():
    m = summarize([Question([S(1.0, "1"), S(0.0, "2")])])
    assert [k for k in m if k.startswith("pass@") and k != "pass@1_ci"] == ["pass@1", "pass@2"]
    assert m["mean_tokens"] is None and m["truncated"] is None and m["format"] is None


@pytest.mark.parametrize(("questions", "ks", "message"), [
    ([Question([S(1.0, "1")] * 4, id="a"), Question([S(1.0, "1")] * 3, id="b")], None,
     r"different numbers of samples \(3, 4; e.g. 'b' has 3\)"),
    ([Question([S(1.0, "1")] * 4)], [8], "pass@8 needs at least 8 samples per question, there are 4"),
])
def test_summarize_refuses(questions, ks, message):
    with pytest.raises(ValueError, match=message):
        summarize(questions, ks)
