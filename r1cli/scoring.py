r"""Score completion records with reward functions: worker processes, per-record timeouts, order kept.

`score_records` is what `r1 score` runs, and what a notebook or `r1 eval` calls:

>>> from r1cli import rewards
>>> recs = [{"completion": "<think>2+2</think><answer>4</answer>", "answer": "4"}]
>>> [(r["rewards"], r["reward"], r["pred"]) for r in score_records(recs, rewards.resolve(["accuracy", "format:0.5"]))]
[({'accuracy': 1.0, 'format': 1.0}, 1.5, '4')]
>>> [r["rewards"] for r in score_records(recs, ["tags"], workers=0)]
[{'tags': 1.0}]

Records are scored in a pool of forked worker processes (`r1cli._pool.ForkPool`: why processes,
why fork, how a stuck record's worker is killed at the timeout and replaced, how the window
bounds memory). This module is the record-level part:

- **A record's outcome.** A worker runs every reward on the record (`_values`) and extracts the
  prediction; a reward that raises is null with a note. A record whose worker was killed at the
  timeout, or died, gets null for the rewards it did not finish (its worker writes each value to
  shared memory as it goes) and a ``score_error`` note, and scoring goes on. A reward's R1Error
  (bad data, e.g. an unknown task) stops the run, naming the record.
- **Cache hits.** The samples of a GRPO group share a gold answer and repeat each other's
  answers, and the rewards cache per process (``accuracy``: parsed golds, and verdicts by (gold,
  prediction)). Records with the same (task, gold answer) go to the same worker (`route_key`),
  so a group's gold is parsed once and its repeated answers hit the verdict cache; an idle
  worker takes queued records (a key's worth) from a busy one rather than wait. Measured on
  8,000 arithmetic completions, 2 workers: 20–30% less worker CPU than routing by (gold,
  extracted prediction), or than no routing; it also spares the parent a prediction extraction
  (a regex pass it could not time out).
- **Warm workers.** The modules the built-in rewards import lazily are imported in the parent
  before the first fork (`PRELOAD`), so that no worker (nor a replacement) pays for them.
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli._pool import WINDOW, Done, ForkPool, Job, JobFailed, Lost, WorkersDying, default_workers
from r1cli.errors import BadInput, R1Error
from r1cli.rewards import Reward, completion_text, missing_fields

TIMEOUT_S = 5.0
# The key a record gets when a reward timed out, failed, or its worker died; absent otherwise.
ERROR_KEY = "score_error"
# Keys a scoring writes; stale ones in the input (a record scored before) are replaced.
OWN_KEYS = ("rewards", "reward", "pred", ERROR_KEY)
# Modules that built-in rewards import lazily, imported in the parent before forking so that
# every worker (and every replacement of a killed one) starts warm: math-verify + sympy ≈ 0.7 s.
PRELOAD: dict[str, tuple[str, ...]] = {
    "accuracy": ("math_verify",),
    "length": ("math_verify",),
    "language": ("langdetect",),
}


@dataclass
class ScoreStats:
    """Counts of one scoring run, filled in as records are scored.

    `unscorable`: records with a null reward (a field it needs is missing, or e.g. a gold answer
    that does not parse), not counting those that timed out or failed. `missing`: (field,
    reward) → records lacking it. `latencies`: seconds each record took to score, collected when
    a list is given.
    """

    records: int = 0
    unscorable: int = 0
    timed_out: int = 0
    failed: int = 0
    restarts: int = 0
    missing: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: list[float] | None = None


def score_records(records: Iterable[Mapping[str, Any]], rewards: Sequence[Reward | str], *, workers: int | None = None,
                  timeout: float = TIMEOUT_S, window: int | None = None, stats: ScoreStats | None = None,
                  affinity: bool = True) -> Iterator[dict[str, Any]]:
    """Scored records, in input order: each record + ``rewards``, ``reward``, ``pred`` (see `score_located`).

    Errors name records by position ("record 3"). Close the generator (or exhaust it) to stop
    its workers; `contextlib.closing` does it on an early exit.
    """
    located = ((f"record {i}", record) for i, record in enumerate(records, start=1))
    return score_located(located, rewards, workers=workers, timeout=timeout, window=window, stats=stats,
                         affinity=affinity)


def score_located(located: Iterable[tuple[str, Mapping[str, Any]]], rewards: Sequence[Reward | str], *,
                  workers: int | None = None, timeout: float = TIMEOUT_S, window: int | None = None,
                  stats: ScoreStats | None = None, affinity: bool = True) -> Iterator[dict[str, Any]]:
    """Score `(where, record)` pairs; yield the scored records in input order.

    Each output is the record + ``rewards`` ({name: float or None}), ``reward`` (weighted sum of
    the non-null rewards, None if all are null) and ``pred`` (the extracted final answer, when a
    reward extracts one) — as `rewards.score_record` — plus ``score_error`` when a reward timed
    out, raised, or its worker died: the rewards not computed are then null.

    `rewards`: built rewards (`rewards.resolve`), or specs (``"format:0.5"``) resolved with
    default parameters. `workers`: processes (default: the CPUs available); 0 scores in this
    process, without the per-record timeout (for debugging: breakpoints, profilers). `timeout`:
    seconds a record may take; past it the worker is killed and replaced. `window`: most records
    in flight (default `r1cli._pool.WINDOW`; fewer when their completions pass `WINDOW_BYTES`).
    `affinity`: score the records of one (task, gold answer) in one worker (`route_key`: cache
    hits). A record without a text `completion` raises BadInput naming `where`; so does a
    reward's own R1Error (e.g. an unknown task).
    """
    if timeout <= 0 or not math.isfinite(timeout):
        raise R1Error(f"timeout must be a positive number of seconds, got {timeout}")
    n = default_workers() if workers is None else workers
    if n < 0:
        raise R1Error(f"workers must be 0 (in this process) or more, got {n}")
    stats = stats if stats is not None else ScoreStats()
    rewards = list(rewards)
    if any(isinstance(r, str) for r in rewards):  # specs such as "format:0.5", for notebooks
        from r1cli.rewards import resolve

        rewards = resolve([str(r) for r in rewards])
    if n == 0 or not hasattr(os, "fork"):  # no fork (Windows): scored in this process
        return _in_process(located, rewards, stats)
    return _pooled(located, rewards, n, timeout, window or WINDOW, stats, affinity)


# ---- one record -------------------------------------------------------------------------------


def check_record(where: str, record: Mapping[str, Any]) -> str:
    """The completion text of a record to score; BadInput naming `where` when there is none."""
    if record.get("completion") is None:
        fields = ", ".join(sorted(record)) or "none"
        raise BadInput(f"{where}: no 'completion' field",
                       hint=f"r1 score reads rollout records (r1 rollout's output); this record's fields are: {fields}")
    text = completion_text(record["completion"])
    if text is None:
        raise BadInput(f"{where}: 'completion' must be text or a list of chat messages",
                       hint=f"got {type(record['completion']).__name__}")
    return text


def route_key(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """Records with the same key are scored by the same worker: (task, gold answer), else (task, id).

    The samples of one prompt then share a worker, whose rewards have that gold parsed and the
    verdicts of the answers repeated in the group cached.

    >>> route_key({"answer": "12", "completion": "..."}), route_key({"task": "code", "id": "p1"})
    (('math', '12'), ('code', 'id:p1'))
    """
    task = str(record.get("task") or "math")
    if record.get("answer") is not None:
        return task, str(record["answer"])
    if record.get("id") is not None:
        return task, f"id:{record['id']}"
    return None


def extract_pred(text: str, record: Mapping[str, Any], rewards: Sequence[Reward]) -> str | None:
    """The prediction the first extracting reward finds in `text` (as `rewards.score_record`)."""
    for reward in rewards:
        extract = getattr(reward.fn, "extract_pred", None)
        if extract is None:
            continue
        try:
            pred = extract(text, record)
        except Exception:  # an extractor that fails finds nothing; the reward itself reports
            pred = None
        if pred is not None:
            return pred
    return None


def _values(record: Mapping[str, Any], rewards: Sequence[Reward],
            progress: memoryview | None = None) -> tuple[list[float | None], str | None, str | None]:
    """(reward values, pred or None, error note or None) for one record.

    A reward that raises an R1Error stops the run (bad data: the message must reach the user);
    any other exception makes that reward null and is noted. `progress` (shared with the parent:
    the index of the reward running, then each value, NaN for null) tells `_partial` what was
    done if the worker is killed.
    """
    text = completion_text(record.get("completion"))
    fields = {k: v for k, v in record.items() if k != "completion"}
    values: list[float | None] = []
    notes: list[str] = []
    for i, reward in enumerate(rewards):
        if progress is not None:
            progress[0] = i
        try:
            value = None if text is None else reward.fn(text, **fields)
            value = None if value is None else float(value)
        except R1Error:
            raise
        except Exception as exc:  # a bug or a verifier crash on odd input: null, noted, scoring goes on
            value = None
            notes.append(f"{reward.name} failed: {type(exc).__name__}: {exc}"[:300])
        values.append(value)
        if progress is not None:
            progress[1 + i] = math.nan if value is None else value
    if progress is not None:
        progress[0] = len(rewards)
    pred = extract_pred(text, fields, rewards) if text is not None else None
    return values, pred, "; ".join(notes) or None


def _partial(progress: Sequence[float] | None, n: int) -> tuple[list[float | None], int]:
    """The values a killed worker had finished (from its `_values` progress), and the index of the reward it was in.

    >>> _partial((1.0, 0.5, 7.0), 2), _partial(None, 2)
    (([0.5, None], 1), ([None, None], 0))
    """
    if progress is None:
        return [None] * n, 0
    running = int(progress[0])
    values = [None if j >= running or math.isnan(progress[1 + j]) else progress[1 + j] for j in range(n)]
    return values, running


def _finish(record: Mapping[str, Any], rewards: Sequence[Reward], values: Sequence[float | None],
            pred: str | None, error: str | None) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in OWN_KEYS}
    out["rewards"] = {r.name: v for r, v in zip(rewards, values)}
    scored = [r.weight * v for r, v in zip(rewards, values) if v is not None]
    out["reward"] = sum(scored) if scored else None
    if pred is not None:
        out["pred"] = pred
    if error is not None:
        out[ERROR_KEY] = error
    return out


def _count(stats: ScoreStats, out: Mapping[str, Any], latency: float, *, timed_out: bool = False) -> None:
    stats.records += 1
    if timed_out:
        stats.timed_out += 1
    elif ERROR_KEY in out:
        stats.failed += 1
    elif any(v is None for v in out["rewards"].values()):
        stats.unscorable += 1
    if stats.latencies is not None:
        stats.latencies.append(latency)


def _note_missing(stats: ScoreStats, record: Mapping[str, Any], rewards: Sequence[Reward]) -> None:
    for pair in missing_fields(record, rewards):
        stats.missing[pair] += 1


def _in_process(located: Iterable[tuple[str, Mapping[str, Any]]], rewards: list[Reward],
                stats: ScoreStats) -> Iterator[dict[str, Any]]:
    for where, record in located:
        check_record(where, record)
        _note_missing(stats, record, rewards)
        start = time.perf_counter()
        try:
            values, pred, error = _values(record, rewards)
        except R1Error as exc:
            raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from exc
        out = _finish(record, rewards, values, pred, error)
        _count(stats, out, time.perf_counter() - start)
        yield out


# ---- in a pool of worker processes ------------------------------------------------------------


def _preload(rewards: Sequence[Reward]) -> None:
    for reward in rewards:
        for module in PRELOAD.get(reward.name, ()):
            try:
                importlib.import_module(module)
            except ImportError:  # the reward reports it, per record
                pass


def _pooled(located: Iterable[tuple[str, Mapping[str, Any]]], rewards: list[Reward], n: int, timeout: float,
            window: int, stats: ScoreStats, affinity: bool) -> Iterator[dict[str, Any]]:
    _preload(rewards)

    def prepare(item: tuple[str, Mapping[str, Any]]) -> Job:
        where, record = item
        text = check_record(where, record)
        _note_missing(stats, record, rewards)
        return Job(payload=record, key=route_key(record) if affinity else None, size=len(text) + 1024, tag=where)

    def work(record: Mapping[str, Any], progress: memoryview) -> tuple[list[float | None], str | None, str | None]:
        return _values(record, rewards, progress)

    pool = ForkPool(work, workers=n, timeout=timeout, progress_slots=1 + len(rewards), fatal=(R1Error,),
                    on_end=_remove_sandbox_folders)
    restarts = stats.restarts
    try:
        for job, outcome in pool.imap(located, prepare, window=window):
            stats.restarts = restarts + pool.restarts
            if isinstance(outcome, Done):
                out = _finish(job.payload, rewards, *outcome.value)
                _count(stats, out, outcome.elapsed)
            else:
                out = _lost(job.payload, rewards, outcome, timeout, stats)
            yield out
    except JobFailed as failed:
        exc = failed.error
        cls = type(exc) if isinstance(exc, R1Error) else R1Error
        raise cls(f"{failed.job.tag}: {getattr(exc, 'message', exc)}", hint=getattr(exc, "hint", None)) from None
    except WorkersDying as dying:
        raise R1Error(f"scoring workers keep dying ({dying})",
                      hint="rerun with --workers 0 to score in one process and see the error") from None
    finally:
        stats.restarts = restarts + pool.restarts


def _remove_sandbox_folders(pid: int) -> None:
    """A worker killed at the timeout (or at the end of the run) never reached the clean-up of the
    code sandbox it was running: remove the folder that sandbox left."""
    from r1cli.sandbox import remove_folders_of

    remove_folders_of(pid)


def _lost(record: Mapping[str, Any], rewards: Sequence[Reward], lost: Lost, timeout: float,
          stats: ScoreStats) -> dict[str, Any]:
    """The scored record of a record whose worker was killed at the timeout, or died."""
    values, running = _partial(lost.progress, len(rewards))
    name = rewards[running].name if running < len(rewards) else "pred extraction"
    note = f"timeout after {timeout:g} s ({name})" if lost.timed_out else f"worker died ({lost.reason}) during {name}"
    out = _finish(record, rewards, values, None, note)
    _count(stats, out, lost.elapsed, timed_out=lost.timed_out)
    return out
