import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing

import psutil
import pytest

from r1cli import rewards
from r1cli.errors import BadInput, R1Error
from r1cli.rewards import Reward
from r1cli._pool import Done, ForkPool, Job, JobFailed, Lost
from r1cli.scoring import ERROR_KEY, ScoreStats, route_key, score_records

OK = "<think>2 + 2 = 4</think><answer>4</answer>"


def children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def no_leftover_processes():
    before = {p.pid for p in children()}
    yield
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and [p for p in children() if p.pid not in before]:
        time.sleep(0.05)
    assert [p for p in children() if p.pid not in before] == []


def probe(name: str, fn, weight: float = 1.0) -> Reward:
    return Reward(name=name, weight=weight, fn=fn)


def misbehaving(completion, behave=None, **_):
    """A test reward: fine (0.5) unless the record says how to misbehave."""
    if behave == "sleep":
        time.sleep(100)  # interruptible by signals, but nothing here sends one
    elif behave == "c-loop":
        re.fullmatch(r"(a+)+b", "a" * 40)  # catastrophic backtracking inside the C regex engine
    elif behave == "crash":
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
    elif behave == "raise":
        raise ValueError("boom")
    return 0.5


ROWS = [
    {"id": "right", "completion": OK, "answer": "4", "src": "kept"},
    {"id": "wrong", "completion": r"<think>hm</think> \boxed{5}", "answer": "4"},
    {"id": "no-answer-field", "completion": OK},
    {"id": "bad-gold", "completion": OK, "answer": r"\frac{"},
    {"id": "chat", "completion": [{"role": "assistant", "content": OK}], "answer": "4.0"},
    {"id": "countdown", "completion": "<answer>(55 - 36) * 2</answer>", "task": "countdown", "numbers": [55, 36, 2],
     "target": 38},
    {"id": "choice", "completion": "The answer is (B).", "task": "choice", "answer": "B"},
    {"id": "rescored", "completion": OK, "answer": "4", "rewards": {"old": 1.0}, "reward": 9.0, "pred": "x"},
]


@pytest.mark.parametrize("workers", [0, 2])
def test_same_records_as_score_record(workers):
    fns = rewards.resolve(["accuracy", "format:0.5"])
    expected = [rewards.score_record(r, fns) for r in ROWS]
    got = list(score_records(ROWS, fns, workers=workers))
    assert got == expected
    assert got[0]["src"] == "kept" and got[0]["reward"] == 1.5
    assert got[2]["rewards"] == {"accuracy": None, "format": 1.0}


def test_output_order_is_input_order_whatever_the_finishing_order():
    def jittery(completion, n=0, **_):
        time.sleep(random.Random(n).random() * 0.01)
        return float(n)

    rows = [{"n": i, "completion": "x"} for i in range(80)]
    out = list(score_records(rows, [probe("n", jittery)], workers=2))
    assert [r["n"] for r in out] == list(range(80))
    assert [r["reward"] for r in out] == [float(i) for i in range(80)]


@pytest.mark.parametrize("behave", ["sleep", "c-loop"])
def test_a_timeout_scores_zero_with_a_note_and_the_pool_goes_on(behave):
    fns = rewards.resolve(["format"]) + [probe("probe", misbehaving, weight=2.0)]
    rows = [{"i": i, "completion": OK, "behave": behave if i == 2 else None} for i in range(6)]
    stats = ScoreStats(latencies=[])
    start = time.monotonic()
    out = list(score_records(rows, fns, workers=2, timeout=0.5, stats=stats))
    assert time.monotonic() - start < 5
    assert [r["i"] for r in out] == list(range(6))
    stuck = out[2]
    assert stuck["rewards"] == {"format": 1.0, "probe": 0.0}  # format was done before the probe hung
    assert stuck["reward"] == 1.0
    assert stuck[ERROR_KEY] == "probe ran past the record's time budget (0.5 s, from --timeout): scored 0.0"
    for r in out[:2] + out[3:]:
        assert r["rewards"] == {"format": 1.0, "probe": 0.5} and ERROR_KEY not in r
    assert (stats.records, stats.timed_out, stats.restarts, stats.failed) == (6, 1, 1, 0)
    assert max(stats.latencies) < 0.5 + 0.5


@pytest.mark.parametrize(("behave", "note"), [
    ("crash", "worker died (signal SIGKILL) during probe: scored null"),
    ("raise", "probe failed: ValueError: boom"),
])
def test_a_crash_or_an_exception_is_noted_and_scoring_goes_on(behave, note):
    rows = [{"completion": "x", "behave": behave if i == 1 else None} for i in range(4)]
    stats = ScoreStats()
    out = list(score_records(rows, [probe("probe", misbehaving)], workers=1, stats=stats))
    assert out[1]["rewards"] == {"probe": None} and out[1]["reward"] is None
    assert out[1][ERROR_KEY] == note
    assert [r["reward"] for r in out[:1] + out[2:]] == [0.5, 0.5, 0.5]
    assert stats.failed == 1


def test_an_exception_is_noted_in_process_too():
    out = list(score_records([{"completion": "x", "behave": "raise"}], [probe("probe", misbehaving)], workers=0))
    assert out[0][ERROR_KEY] == "probe failed: ValueError: boom"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_record_without_completion_is_an_error_naming_it(workers):
    rows = [{"completion": OK, "answer": "4"}, {"answer": "4", "id": "x"}]
    with pytest.raises(BadInput, match=r"^record 2: no 'completion' field") as info:
        list(score_records(rows, rewards.resolve(["format"]), workers=workers))
    assert "answer, id" in info.value.hint


@pytest.mark.parametrize("workers", [0, 2])
def test_a_reward_error_stops_the_run_naming_the_record(workers):
    rows = [{"completion": OK, "answer": "4"}, {"completion": OK, "answer": "4", "task": "poetry"}]
    with pytest.raises(BadInput, match=r"^record 2: unknown task 'poetry'") as info:
        list(score_records(rows, rewards.resolve(["accuracy"]), workers=workers))
    assert info.value.hint == "a record's task is one of: math, countdown, choice, code"


def test_missing_fields_are_null_and_counted():
    stats = ScoreStats()
    rows = [{"completion": OK}, {"completion": OK, "answer": "4"}, {"completion": "x", "task": "countdown"}]
    out = list(score_records(rows, rewards.resolve(["accuracy", "format"]), workers=2, stats=stats))
    assert [r["rewards"]["accuracy"] for r in out] == [None, 1.0, None]
    assert stats.missing == {("answer", "accuracy"): 1, ("numbers", "accuracy"): 1, ("target", "accuracy"): 1}
    assert stats.unscorable == 2


def test_workers_are_gone_however_the_consumer_stops():
    fns = [probe("probe", misbehaving)]
    rows = [{"completion": "x"}] * 50
    # closed after one record
    with closing(score_records(rows, fns, workers=2)) as scored:
        next(scored)
        assert len(children()) == 2
    assert children() == []
    # an exception in the consumer
    with pytest.raises(RuntimeError), closing(score_records(rows, fns, workers=2)) as scored:
        for _ in scored:
            raise RuntimeError
    assert children() == []
    # abandoned without close: garbage collection ends the generator
    scored = score_records(rows, fns, workers=2)
    next(scored)
    del scored
    assert children() == []


def test_input_is_streamed_with_bounded_read_ahead():
    pulled = []
    release = threading.Event()

    def endless():
        i = 0
        while True:
            if i == 3:
                release.wait(10)  # a slow upstream: the first records must come out meanwhile
            pulled.append(i)
            yield {"completion": "x", "i": i}
            i += 1

    with closing(score_records(endless(), [probe("probe", misbehaving)], workers=2, window=16)) as scored:
        start = time.monotonic()
        first = [next(scored)["i"] for _ in range(3)]
        assert first == [0, 1, 2] and time.monotonic() - start < 5
        release.set()
        for _ in range(100):
            next(scored)
    # in flight (16) + the reader's queue (64) + the one it holds
    assert len(pulled) <= 103 + 16 + 64 + 1


def test_a_prompts_samples_go_to_the_worker_that_has_its_verdicts():
    def cached_verdicts():
        seen = set()  # per process: each worker starts with its own empty cache

        def verdict(completion, answer=None, **_):
            if (answer, completion) in seen:
                return 0.0
            seen.add((answer, completion))
            time.sleep(0.003)  # a verification
            return 1.0  # 1.0 = a cache miss

        return verdict

    # 10 prompts (gold answers) × 16 samples, 4 distinct answers each: a GRPO batch, shuffled
    rows = [{"answer": f"gold{p}", "completion": f"pred{s % 4}"} for p in range(10) for s in range(16)]
    random.Random(0).shuffle(rows)
    misses = {}
    for affinity in (True, False):
        out = score_records(rows, [probe("miss", cached_verdicts())], workers=2, affinity=affinity)
        misses[affinity] = sum(r["reward"] for r in out)
    assert misses[True] <= 60  # one per (gold, answer) = 40, plus some after an idle worker takes records
    assert misses[True] < misses[False]


def slow_square(n, progress):
    """Pool work: writes its progress, then squares n; n == 3 hangs, n == 5 crashes, n == 7 raises."""
    progress[0] = n
    if n == 3:
        time.sleep(100)
    elif n == 5:
        raise KeyError(n)  # not one of the pool's fatal types: the worker dies
    elif n == 7:
        raise BadInput("seven", hint="no sevens")
    return n * n


def test_fork_pool_outcomes_in_input_order():
    pool = ForkPool(slow_square, workers=2, timeout=0.5, progress_slots=1, fatal=(BadInput,))
    out = list(pool.imap(range(7), lambda n: Job(payload=n, tag=f"item {n}")))
    assert [job.payload for job, _ in out] == list(range(7))
    assert [o.value for _, o in out if isinstance(o, Done)] == [0, 1, 4, 16, 36]
    hung, crashed = out[3][1], out[5][1]
    assert isinstance(hung, Lost) and hung.timed_out and hung.reason == "timeout" and hung.progress == (3.0,)
    assert isinstance(crashed, Lost) and not crashed.timed_out and crashed.reason == "exit code 1"
    assert crashed.progress == (5.0,) and pool.restarts == 2


def test_fork_pool_fatal_errors_reach_the_parent_whole():
    pool = ForkPool(slow_square, workers=1, timeout=5, progress_slots=1, fatal=(BadInput,))
    with pytest.raises(JobFailed) as info:
        list(pool.imap([1, 7, 2], lambda n: Job(payload=n, tag=f"item {n}")))
    assert info.value.job.tag == "item 7"
    assert type(info.value.error) is BadInput and info.value.error.hint == "no sevens"


def test_route_key_groups_a_prompts_samples():
    assert route_key({"answer": 12}) == route_key({"answer": "12", "id": "other"}) == ("math", "12")
    assert route_key({"task": "countdown", "id": 7}) == ("countdown", "id:7")
    assert route_key({"completion": "x"}) is None


NESTED = "1"
for _ in range(50):
    NESTED = r"\frac{1}{" + NESTED + "}"
ADVERSARIAL = {
    "tower": r"<think>big</think><answer>10^{10^{10^{10}}}</answer>",
    "nested": r"<think>deep</think><answer>" + NESTED + "</answer>",
    "1 MB": r"<think>long</think><answer>" + "9" * 1_000_000 + "</answer>",
    "unbalanced": r"<think>open</think> so \boxed{12",
}


def test_adversarial_answers_are_judged_without_reaching_the_timeout():
    rows = [{"kind": k, "completion": c, "answer": "12"} for k, c in ADVERSARIAL.items()]
    rows.append({"kind": "fine", "completion": r"\boxed{12}", "answer": "12"})
    stats = ScoreStats(latencies=[])
    out = list(score_records(rows, rewards.resolve(["accuracy", "format"]), workers=2, timeout=2.0, stats=stats))
    assert [r["kind"] for r in out] == [*ADVERSARIAL, "fine"]
    assert stats.timed_out == 0 and max(stats.latencies) < 1.0
    assert [r["rewards"]["accuracy"] for r in out] == [0.0] * len(ADVERSARIAL) + [1.0]
    assert not any("timeout" in r.get(ERROR_KEY, "") for r in out)  # refused in the reward, with its reason


WORKER_PIDS = """
import os, sys, time
from r1cli.rewards import Reward
from r1cli.scoring import score_records

def slow(completion, **_):
    time.sleep(100)

rows = ({"completion": "x"} for _ in iter(int, 1))
scored = score_records(rows, [Reward("slow", 1.0, slow)], workers=2, timeout=60)
import threading
threading.Timer(0.5, lambda: print(*[p.pid for p in __import__("psutil").Process().children()], flush=True)).start()
next(scored)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_workers_die_with_their_parent(how):
    # SIGINT at its default even where the suite runs with it ignored (a background job, nohup)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER_PIDS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        proc.send_signal(how)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    assert alive == []


def test_scored_records_are_json():
    out = list(score_records([{"completion": OK, "answer": "4"}], rewards.resolve(["accuracy"]), workers=1))
    assert json.loads(json.dumps(out[0]))["rewards"] == {"accuracy": 1.0}


# ---- budgets: a hang is a wrong answer, and the rewards' own limits decide -------------------------


class Budgeted:
    """A test reward that declares its own time budget; `behave` says how a record misbehaves."""

    def __init__(self, budget_s: float | None = None, per_test: float | None = None) -> None:
        if budget_s is not None:
            self.budget_s = budget_s
        if per_test is not None:  # a budget that grows with the record, as a code reward's with its tests
            self.budget_for = lambda record: per_test * len(record.get("tests") or [])

    def __call__(self, completion, behave=None, tests=None, **_):
        if behave == "slow-ok":  # needs more than the default budget, less than its own
            time.sleep(0.2 * len(tests))
            return 1.0
        if behave == "nan":
            return float("nan")
        return misbehaving(completion, behave=behave)


def pred_reward(completion, **_):
    return 1.0


pred_reward.budget_s = 0.1
pred_reward.extract_pred = lambda text, record: text.split()[-1]


@pytest.mark.parametrize(("behave", "fn", "rewards_", "pred", "note"), [
    # a reward stuck in Python, in C (uninterruptible), or asleep: the reward in it scores 0.0
    ("sleep", Budgeted(0.3), {"fmt": 1.0, "probe": 0.0, "after": 1.0}, "x", "probe ran past the record's time budget"),
    ("c-loop", Budgeted(0.3), {"fmt": 1.0, "probe": 0.0, "after": 1.0}, "x", "probe ran past the record's time budget"),
    # slower than the default budget (5 s), within its own (10 tests × 0.8 s): scored, not killed
    ("slow-ok", Budgeted(per_test=0.8), {"fmt": 1.0, "probe": 1.0, "after": 1.0}, "x", None),
    # the machinery failed, not the completion: null
    ("crash", Budgeted(0.3), {"fmt": 1.0, "probe": None, "after": 1.0}, "x", "worker died (signal SIGKILL) during probe"),
    # NaN is not JSON: null, noted
    ("nan", Budgeted(0.3), {"fmt": 1.0, "probe": None, "after": 1.0}, "x", "probe returned nan"),
])
def test_budgets_decide_and_a_hang_scores_zero_keeping_the_other_rewards_and_pred(behave, fn, rewards_, pred, note):
    fmt = Reward("fmt", 1.0, pred_reward)  # all declare a budget: none shares the default 5 s
    after = Reward("after", 1.0, pred_reward)
    rows = [{"i": i, "completion": "answer x", "tests": [{}] * 10, "behave": behave if i == 1 else None}
            for i in range(3)]
    stats = ScoreStats()
    start = time.monotonic()
    out = list(score_records(rows, [fmt, probe("probe", fn), after], workers=2, stats=stats))
    elapsed = time.monotonic() - start
    assert out[1]["rewards"] == rewards_ and out[1]["pred"] == pred
    if note is None:
        assert ERROR_KEY not in out[1]
    else:
        assert out[1][ERROR_KEY].startswith(note), out[1][ERROR_KEY]
    assert [r["rewards"] for r in (out[0], out[2])] == [{"fmt": 1.0, "probe": 0.5, "after": 1.0}] * 2
    assert stats.timed_out == (behave in ("sleep", "c-loop"))
    limit = 10 * 0.2 + 3 if behave == "slow-ok" else 0.5 + 1.0 + 3  # the budgets + the margin + start-up
    assert elapsed < limit


def test_pred_extraction_that_hangs_is_bounded_too():
    hanging = Reward("r", 1.0, lambda completion, **_: 1.0)
    hanging.fn.budget_s = 0.2  # type: ignore[attr-defined]

    def slow_pred(text, record):
        time.sleep(100)

    hanging.fn.extract_pred = slow_pred  # type: ignore[attr-defined]
    out = list(score_records([{"completion": "x"}], [hanging], workers=1))
    assert out[0]["rewards"] == {"r": 1.0} and out[0]["pred"] is None
    assert out[0][ERROR_KEY].startswith("pred extraction ran past the record's time budget (1.2 s)")


def test_an_explicit_timeout_overrides_the_budgets_and_is_counted():
    fn = Budgeted(per_test=0.8)
    rows = [{"completion": "x", "tests": [{}] * 10, "behave": "slow-ok"}]
    stats = ScoreStats()
    out = list(score_records(rows, [probe("probe", fn)], workers=1, timeout=0.5, stats=stats))
    assert out[0]["rewards"] == {"probe": 0.0}
    assert out[0][ERROR_KEY] == "probe ran past the record's time budget (0.5 s, from --timeout): scored 0.0"
    assert (stats.capped, stats.timed_out) == (1, 1)


def test_record_budget_sums_the_declared_limits():
    from r1cli.scoring import DEFAULT_BUDGET_S, MARGIN_S, record_budget

    plain = probe("plain", lambda c, **_: 1.0)
    code = probe("code", Budgeted(per_test=2.0))
    fixed = probe("fixed", Budgeted(7.0))
    rec = {"tests": [{}] * 3}
    assert record_budget([plain], rec) == DEFAULT_BUDGET_S + MARGIN_S
    assert record_budget([plain, code, fixed], rec) == 6.0 + 7.0 + DEFAULT_BUDGET_S + MARGIN_S
    assert record_budget([code, fixed], rec) == 13.0 + MARGIN_S
    bad = probe("bad", Budgeted(float("nan")))
    with pytest.raises(R1Error, match="declares a time budget of nan s"):
        record_budget([bad], rec)


def test_fork_pool_per_job_timeout_and_retry():
    def work(n, progress):
        progress[0] = n
        time.sleep(n)
        return n

    retried = []

    def retry(job, lost):
        retried.append((job.payload, lost.timed_out))
        return None if job.payload == 0 else Job(payload=0, size=job.size, timeout=0.5)

    pool = ForkPool(work, workers=1, timeout=0.3, progress_slots=1, retry=retry)
    jobs = [Job(payload=0.1), Job(payload=0.6, timeout=1.5), Job(payload=5.0)]
    out = [(job.payload, type(o).__name__, getattr(o, "value", None)) for job, o in pool.imap(jobs, lambda j: j)]
    assert out == [(0.1, "Done", 0.1), (0.6, "Done", 0.6), (0, "Done", 0)]  # 5.0 timed out at 0.3, ran again as 0
    assert retried == [(5.0, True)]
