r"""Evaluation metrics: pass@1, unbiased pass@k, cons@k, bootstrap intervals — pure functions on lists.

The DeepSeek-R1 protocol (paper §3): k samples per question at T=0.6, top-p 0.95;
**pass@1** is the mean correctness of the k samples, averaged over questions; **cons@k** is the
correctness of the majority answer. **pass@k** is Chen et al. (2021)'s unbiased estimator from
n ≥ k samples.

>>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
(0.25, 1.0, 0.0)
>>> votes = majority_vote(["1/2", r"\frac12", "3", "0.5"], answers_equal)
>>> votes.winner, votes.counts
(0, [3, 1])
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Equal = Callable[[str, str], bool]


# ---- pass@k ----------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 − C(n−c, k) / C(n, k) (Chen et al. 2021).

    Computed as 1 − ∏_{i=n−c+1}^{n} (1 − k/i), the product form of the paper's code: exact
    binomials overflow floats past n ≈ 1,000 and lose precision well before.

    >>> round(pass_at_k(10, 3, 1), 12), round(pass_at_k(10, 3, 5), 6), pass_at_k(10, 8, 5)
    (0.3, 0.916667, 1.0)
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 ≤ correct ≤ samples, got {c} correct of {n}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of samples ({n}), got {k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def is_correct(value: float | None) -> bool:
    """A sample counts as correct when its accuracy is 1 (code's partial credit is not a pass).

    >>> is_correct(1.0), is_correct(0.5), is_correct(None)
    (True, False, False)
    """
    return value is not None and value >= 1.0


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None for no values."""
    return sum(values) / len(values) if values else None


# ---- majority vote ---------------------------------------------------------------------------


def answers_equal(a: str, b: str) -> bool:
    r"""Whether two math answers are the same value: math-verify through the accuracy reward's cached `math_equal`.

    The first answer plays the gold's part (its parse is cached); when it does not parse, the
    two are compared as text (`same_text`: spacing, $…$ and \boxed{} ignored).

    >>> answers_equal("1/2", "0.5"), answers_equal(r"\frac12", "1/2"), answers_equal("1/2", "2")
    (True, True, False)
    """
    from r1cli.verifiers._guards import same_text
    from r1cli.verifiers.math import math_equal

    if a == b:
        return True
    verdict = math_equal(a, b)
    return same_text(a, b) if verdict is None else verdict


def text_equal(a: str, b: str) -> bool:
    """Equal up to case and spacing: choice letters, countdown expressions.

    >>> text_equal(" b", "B"), text_equal("(1 + 2)*3", "(1+2) * 3")
    (True, True)
    """
    return "".join(a.split()).lower() == "".join(b.split()).lower()


def equality_for(task: str | None) -> Equal:
    """How a task's answers are grouped for voting: by value for math, by text otherwise."""
    return answers_equal if (task or "math") == "math" else text_equal


@dataclass(frozen=True)
class Votes:
    """The answer classes of one question: each sample's class (None: no answer), each class's
    first sample and vote count, and the winning class (None when no sample gave an answer)."""

    labels: list[int | None]
    first: list[int]
    counts: list[int]
    winner: int | None


def majority_vote(preds: Sequence[str | None], equal: Equal = answers_equal) -> Votes:
    r"""Group answers into classes of equal answers and pick the class with the most votes.

    A sample without an answer (None) does not vote. Each answer joins the first class whose
    first answer it equals, else starts a class; identical strings are matched without calling
    `equal`. Ties go to the class whose first answer came first: deterministic, and
    independent of how `equal` orders its work.

    >>> v = majority_vote(["7", None, "8", "8", "7"], text_equal)
    >>> v.labels, v.counts, v.winner
    ([0, None, 1, 1, 0], [2, 2], 0)
    >>> majority_vote([None, None]).winner is None
    True
    """
    labels: list[int | None] = []
    first: list[int] = []
    counts: list[int] = []
    seen: dict[str, int] = {}  # exact text → class
    for i, pred in enumerate(preds):
        if pred is None or not pred.strip():
            labels.append(None)
            continue
        cls = seen.get(pred)
        if cls is None:
            cls = next((j for j, f in enumerate(first) if equal(preds[f], pred)), None)  # type: ignore[arg-type]
            if cls is None:
                first.append(i)
                counts.append(0)
                cls = len(first) - 1
            seen[pred] = cls
        labels.append(cls)
        counts[cls] += 1
    if not counts:
        return Votes(labels, first, counts, None)
    return Votes(labels, first, counts, counts.index(max(counts)))


# ---- intervals ---------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (numpy's default method).

    >>> quantile([0.0, 1.0, 2.0, 3.0], 0.5), quantile([5.0], 0.9)
    (1.5, 5.0)
    """
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95, resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values` (e.g. per-question pass@1), seeded.

    `resamples` draws of len(values) values with replacement; the interval holds the middle
    `level` of their means. None for no values.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    >>> lo, hi = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    >>> 0.38 < lo < 0.5 < hi < 0.62
    True
    """
    if not values:
        return None
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be ≥ 1, got {resamples}")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return quantile(means, tail), quantile(means, 1 - tail)


# ---- one benchmark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What the metrics need of one scored completion."""

    correct: float | None  # the accuracy reward: 1.0, 0.0 (or partial), None = unscorable
    pred: str | None = None  # the extracted final answer
    tokens: int | None = None  # completion tokens
    truncated: bool | None = None  # finish_reason == "length"; None when unknown
    formatted: float | None = None  # the format reward


@dataclass(frozen=True)
class Question:
    samples: Sequence[Sample]
    task: str = "math"
    id: str = ""

    def scorable(self) -> bool:
        """Whether any sample could be judged (a gold answer that does not parse makes none)."""
        return any(s.correct is not None for s in self.samples)


@dataclass(frozen=True)
class QuestionScore:
    """Per-question results: samples, correct samples, mean correctness, and the majority vote's correctness."""

    n: int
    c: int
    pass1: float
    cons: float
    votes: Votes = field(repr=False)


def score_question(question: Question) -> QuestionScore:
    """pass@1 (share of correct samples) and cons (the majority answer is right) of one question.

    An unscorable sample (None) counts as not correct. The majority class is judged by its
    first sample that was judged.

    >>> q = Question([Sample(1.0, "0.5"), Sample(0.0, "2"), Sample(1.0, "1/2"), Sample(0.0, None)])
    >>> s = score_question(q)
    >>> s.n, s.c, s.pass1, s.cons
    (4, 2, 0.5, 1.0)
    """
    samples = question.samples
    c = sum(is_correct(s.correct) for s in samples)
    votes = majority_vote([s.pred for s in samples], equality_for(question.task))
    cons = 0.0
    if votes.winner is not None:
        members = [s for s, label in zip(samples, votes.labels, strict=True) if label == votes.winner]
        judged = next((s.correct for s in members if s.correct is not None), None)
        cons = float(is_correct(judged))
    return QuestionScore(n=len(samples), c=c, pass1=c / len(samples) if samples else 0.0, cons=cons, votes=votes)


def default_ks(n: int) -> list[int]:
    """The pass@k reported by default for n samples: 1, 4, 16, 64… up to n, and n itself.

    >>> default_ks(1), default_ks(4), default_ks(8), default_ks(64)
    ([1], [1, 4], [1, 4, 8], [1, 4, 16, 64])
    """
    ks = [k for k in (4**i for i in range(8)) if k <= n]
    return ks if ks[-1] == n else [*ks, n]


def summarize(questions: Sequence[Question], ks: Sequence[int] | None = None, *, level: float = 0.95,
              resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The metrics of one benchmark: the R1 protocol's pass@1 and cons@n, unbiased pass@k, rates.

    Every question must have the same number of samples n (ValueError otherwise, and for
    k > n). Questions that no sample could be judged on (their gold does not parse) are left
    out and counted as `unscorable`. Keys: questions, samples, pass@1, pass@1_ci (the `level`
    bootstrap interval over questions), cons@<n>, pass@<k> for each k, mean_tokens,
    truncated (share of samples cut at the length limit), format (mean format reward),
    answered (share of samples with an extracted answer), unscorable. Rates are None when no
    sample carries what they need.

    >>> qs = [Question([Sample(1.0, "4"), Sample(0.0, "5")]), Question([Sample(0.0, "3"), Sample(0.0, "3")])]
    >>> m = summarize(qs, [1, 2])
    >>> m["questions"], m["samples"], m["pass@1"], m["cons@2"], m["pass@2"]
    (2, 2, 0.25, 0.5, 0.5)
    """
    sizes = {len(q.samples) for q in questions}
    if len(sizes) > 1:
        counts = sorted(sizes)
        odd = next(q for q in questions if len(q.samples) != len(questions[0].samples))
        raise ValueError(f"questions have different numbers of samples ({', '.join(map(str, counts))}; "
                         f"e.g. '{odd.id}' has {len(odd.samples)})")
    n = sizes.pop() if sizes else 0
    if n == 0 and questions:
        raise ValueError("a question has no samples")
    ks = list(ks) if ks is not None else (default_ks(n) if n else [1])
    for k in ks:
        if n and not 1 <= k <= n:
            raise ValueError(f"pass@{k} needs at least {k} samples per question, there are {n}")
    judged = [q for q in questions if q.scorable()]
    scores = [score_question(q) for q in judged]
    per_q = [s.pass1 for s in scores]
    ci = bootstrap_ci(per_q, level=level, resamples=resamples, seed=seed)
    out: dict[str, Any] = {
        "questions": len(judged),
        "samples": n,
        "pass@1": mean(per_q),
        "pass@1_ci": None if ci is None else [ci[0], ci[1]],
        f"cons@{n}": mean([s.cons for s in scores]),
    }
    for k in ks:
        out[f"pass@{k}"] = mean([pass_at_k(s.n, s.c, k) for s in scores])
    samples = [s for q in judged for s in q.samples]
    out["mean_tokens"] = mean([float(s.tokens) for s in samples if s.tokens is not None])
    out["truncated"] = mean([float(s.truncated) for s in samples if s.truncated is not None])
    out["format"] = mean([s.formatted for s in samples if s.formatted is not None])
    out["answered"] = mean([float(s.pred is not None and bool(s.pred.strip())) for s in samples])
    out["unscorable"] = len(questions) - len(judged)
    return out
