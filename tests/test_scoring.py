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
from r1cli.errors import BadInput
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
def test_timeout_gives_nulls_a_note_and_the_pool_goes_on(behave):
    fns = rewards.resolve(["format"]) + [probe("probe", misbehaving, weight=2.0)]
    rows = [{"i": i, "completion": OK, "behave": behave if i == 2 else None} for i in range(6)]
    stats = ScoreStats(latencies=[])
    start = time.monotonic()
    out = list(score_records(rows, fns, workers=2, timeout=0.5, stats=stats))
    assert time.monotonic() - start < 5
    assert [r["i"] for r in out] == list(range(6))
    stuck = out[2]
    assert stuck["rewards"] == {"format": 1.0, "probe": None}  # format was done before the probe hung
    assert stuck["reward"] == 1.0
    assert stuck[ERROR_KEY] == "timeout after 0.5 s (probe)"
    for r in out[:2] + out[3:]:
        assert r["rewards"] == {"format": 1.0, "probe": 0.5} and ERROR_KEY not in r
    assert (stats.records, stats.timed_out, stats.restarts, stats.failed) == (6, 1, 1, 0)
    assert max(stats.latencies) < 0.5 + 0.5


@pytest.mark.parametrize(("behave", "note"), [
    ("crash", "worker died (signal SIGKILL) during probe"),
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
    assert not any(ERROR_KEY in r for r in out)


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
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER_PIDS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
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
