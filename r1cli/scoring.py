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
  prediction; a reward that raises is null with a note. A reward's R1Error (bad data, e.g. an
  unknown task) stops the run, naming the record.
- **Budgets: a hang is a wrong answer.** A record may run for the sum of its rewards' own limits
  (`record_budget`: a reward's ``budget_for(record)`` or ``budget_s``; those declaring none share
  `DEFAULT_BUDGET_S`), plus `MARGIN_S`, so a reward's own limit (a sandbox's per-test timeout)
  fires first and reports itself. Past its budget the worker is killed: the reward it was in
  scores **0.0** (the completion exhausted a limit) with a ``score_error`` naming the limit, and
  the record runs again in the fresh worker from the next reward on (each worker writes every
  value to shared memory as it goes), so the other rewards and ``pred`` are still computed. A
  worker that dies of something else (a signal, a crash of the machinery) makes that reward
  null instead: the completion cannot be blamed.
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
from dataclasses import dataclass, field, replace
from typing import Any

from r1cli._pool import WINDOW, Done, ForkPool, Job, JobFailed, Lost, WorkersDying, default_workers
from r1cli.errors import BadInput, R1Error
from r1cli.rewards import Reward, completion_text, missing_fields

TIMEOUT_S = 5.0
# Seconds a record's rewards that declare no limit of their own (format, language, a math answer
# that math-verify must parse) share together: the old fixed --timeout, which they fit at ~2 ms a record.
DEFAULT_BUDGET_S = TIMEOUT_S
# Added to every budget: a reward's own limit must fire before the pool's (the pool's clock also
# runs while a job is pickled, sent and unpickled: ~10 ms for a 1 MB completion).
MARGIN_S = 1.0
# The key a record gets when a reward timed out, failed, or its worker died; absent otherwise.
ERROR_KEY = "score_error"
# Keys a scoring writes; stale ones in the input (a record scored before) are replaced.
# The key that names the isolation a code reward ran the completion's program under (`Verdict.sandbox`).
SANDBOX_KEY = "sandbox"
OWN_KEYS = ("rewards", "reward", "pred", ERROR_KEY, SANDBOX_KEY)
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
    a list is given. `timed_out`: records whose worker was killed past their time budget (their
    reward then scored 0.0). `capped`: of those, the ones an explicit `timeout` below their rewards'
    own limits stopped.
    """

    records: int = 0
    unscorable: int = 0
    timed_out: int = 0
    failed: int = 0
    restarts: int = 0
    capped: int = 0
    missing: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: list[float] | None = None


def score_records(records: Iterable[Mapping[str, Any]], rewards: Sequence[Reward | str], *, workers: int | None = None,
                  timeout: float | None = None, window: int | None = None, stats: ScoreStats | None = None,
                  affinity: bool = True) -> Iterator[dict[str, Any]]:
    """Scored records, in input order: each record + ``rewards``, ``reward``, ``pred`` (see `score_located`).

    Errors name records by position ("record 3"). Close the generator (or exhaust it) to stop
    its workers; `contextlib.closing` does it on an early exit.
    """
    located = ((f"record {i}", record) for i, record in enumerate(records, start=1))
    return score_located(located, rewards, workers=workers, timeout=timeout, window=window, stats=stats,
                         affinity=affinity)


def score_located(located: Iterable[tuple[str, Mapping[str, Any]]], rewards: Sequence[Reward | str], *,
                  workers: int | None = None, timeout: float | None = None, window: int | None = None,
                  stats: ScoreStats | None = None, affinity: bool = True) -> Iterator[dict[str, Any]]:
    """Score `(where, record)` pairs; yield the scored records in input order.

    Each output is the record + ``rewards`` ({name: float or None}), ``reward`` (weighted sum of
    the non-null rewards, None if all are null) and ``pred`` (the extracted final answer, when a
    reward extracts one) — as `rewards.score_record` — plus ``score_error`` when a reward ran past
    its time budget (it scores 0.0), raised, or its worker died (it is null).

    `rewards`: built rewards (`rewards.resolve`), or specs (``"format:0.5"``) resolved with
    default parameters. `workers`: processes (default: the CPUs available); 0 scores in this
    process, without time budgets (for debugging: breakpoints, profilers). `timeout`: None
    (default) gives each record the budget its rewards' limits add up to (`record_budget`); a
    number is the budget of every record instead (`stats.capped` counts the records it stopped
    before their rewards' own limits). Past the budget the worker is killed and replaced. `window`: most records
    in flight (default `r1cli._pool.WINDOW`; fewer when their completions pass `WINDOW_BYTES`).
    `affinity`: score the records of one (task, gold answer) in one worker (`route_key`: cache
    hits). A record without a text `completion` raises BadInput naming `where`; so does a
    reward's own R1Error (e.g. an unknown task).
    """
    if timeout is not None and (timeout <= 0 or not math.isfinite(timeout)):
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


def reward_budget(reward: Reward, record: Mapping[str, Any]) -> float | None:
    """Wall seconds `reward` may need on `record`, as it declares them (``budget_for(record)``, else
    ``budget_s``); None when it declares none."""
    fn = reward.fn
    budget_for = getattr(fn, "budget_for", None)
    value = budget_for(record) if budget_for is not None else getattr(fn, "budget_s", None)
    if value is None:
        return None
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise R1Error(f"reward '{reward.name}' declares a time budget of {value} s; it must be a positive number")
    return value


def record_budget(rewards: Sequence[Reward], record: Mapping[str, Any], skip: Iterable[int] = ()) -> float:
    """Seconds the rewards of `record` (all but the indices in `skip`) may take together.

    Rewards run one after another in a worker, so their own limits add up; those that declare
    none share `DEFAULT_BUDGET_S`. `MARGIN_S` is added.

    >>> fast = Reward("format", 1.0, lambda c, **_: 1.0)
    >>> slow = Reward("code", 1.0, type("Fn", (), {"budget_s": 30.0, "__call__": lambda self, c, **_: 0.0})())
    >>> record_budget([fast], {}), record_budget([fast, slow], {}), record_budget([fast, slow], {}, skip=[0])
    (6.0, 36.0, 31.0)
    """
    skip = set(skip)
    declared = [reward_budget(r, record) for i, r in enumerate(rewards) if i not in skip]
    shared = DEFAULT_BUDGET_S if any(b is None for b in declared) else 0.0
    return sum(b for b in declared if b is not None) + shared + MARGIN_S


@dataclass(frozen=True)
class _Attempt:
    """A record run again after its worker was lost: `settled` {reward index: value} are not run
    again, `notes` say why, `skip_pred` when pred extraction itself was what hung."""

    record: Mapping[str, Any]
    settled: dict[int, float | None]
    notes: tuple[str, ...]
    skip_pred: bool = False
    timed_out: bool = False


def _number(reward: Reward, value: Any, notes: list[str]) -> float | None:
    """A reward's value as a float; NaN or ±inf (JSON has neither) is null, noted."""
    if value is None:
        return None
    why = getattr(value, "why", None)  # a `verifiers.Verdict`: why the answer scored 0
    if why:
        notes.append(f"{reward.name}: {why}"[:300])
    value = float(value)
    if not math.isfinite(value):
        notes.append(f"{reward.name} returned {value}, not a number JSON can hold: scored null")
        return None
    return value


def _values(record: Mapping[str, Any], rewards: Sequence[Reward], progress: memoryview | None = None,
            attempt: _Attempt | None = None) -> tuple[list[float | None], str | None, str | None, str | None]:
    """(reward values, pred or None, error note or None, sandbox or None) for one record.

    A reward that raises an R1Error stops the run (bad data: the message must reach the user);
    any other exception makes that reward null and is noted. `progress` (shared with the parent:
    the index of the reward running, then each value, NaN for null) tells `_partial` what was
    done if the worker is killed. `attempt`: the rewards already settled in an earlier worker.
    """
    text = completion_text(record.get("completion"))
    fields = {k: v for k, v in record.items() if k != "completion"}
    settled = attempt.settled if attempt is not None else {}
    sandbox = None
    values: list[float | None] = []
    notes: list[str] = list(attempt.notes) if attempt is not None else []
    for i, reward in enumerate(rewards):
        if progress is not None:
            progress[0] = i
        if i in settled:
            value = settled[i]
        else:
            try:
                raw = None if text is None else reward.fn(text, **fields)
                sandbox = getattr(raw, "sandbox", None) or sandbox  # a code reward's isolation
                value = _number(reward, raw, notes)
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
    skip_pred = attempt is not None and attempt.skip_pred
    pred = extract_pred(text, fields, rewards) if text is not None and not skip_pred else None
    return values, pred, "; ".join(notes) or None, sandbox


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
            pred: str | None, error: str | None, sandbox: str | None = None) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in OWN_KEYS}
    out["rewards"] = {r.name: v for r, v in zip(rewards, values)}
    scored = [r.weight * v for r, v in zip(rewards, values) if v is not None]
    out["reward"] = sum(scored) if scored else None
    out["pred"] = pred  # on every scored record: null when nothing was extracted
    if error is not None:
        out[ERROR_KEY] = error
    if sandbox is not None:
        out[SANDBOX_KEY] = sandbox
    return out


# How the notes of a reward that raised, or of a worker that died, begin (`_values`, `_retry`, `_pooled`).
_FAILED = (" failed: ", "worker died (")


def _count(stats: ScoreStats, out: Mapping[str, Any], latency: float, *, timed_out: bool = False) -> None:
    stats.records += 1
    if timed_out:
        stats.timed_out += 1
    elif any(mark in out.get(ERROR_KEY, "") for mark in _FAILED):  # not a 0 with its reason, nor a missing field
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
            values, pred, error, sandbox = _values(record, rewards)
        except R1Error as exc:
            raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from exc
        out = _finish(record, rewards, values, pred, error, sandbox)
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


def _pooled(located: Iterable[tuple[str, Mapping[str, Any]]], rewards: list[Reward], n: int, timeout: float | None,
            window: int, stats: ScoreStats, affinity: bool) -> Iterator[dict[str, Any]]:
    _preload(rewards)

    def prepare(item: tuple[str, Mapping[str, Any]]) -> Job:
        where, record = item
        text = check_record(where, record)
        _note_missing(stats, record, rewards)
        try:
            budget = record_budget(rewards, record)
        except R1Error as exc:
            raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None
        return Job(payload=record, key=route_key(record) if affinity else None, size=len(text) + 1024, tag=where,
                   timeout=budget if timeout is None else timeout)

    def work(payload: Any, progress: memoryview) -> tuple[list[float | None], str | None, str | None, str | None]:
        if isinstance(payload, _Attempt):
            return _values(payload.record, rewards, progress, payload)
        return _values(payload, rewards, progress)

    def retry(job: Job, lost: Lost) -> Job | None:
        if lost.timed_out and timeout is not None and isinstance(job.payload, Mapping):
            stats.capped += record_budget(rewards, job.payload) > timeout
        return _retry(job, lost, rewards, timeout)

    pool = ForkPool(work, workers=n, timeout=TIMEOUT_S, progress_slots=1 + len(rewards), fatal=(R1Error,),
                    on_end=_remove_sandbox_folders, retry=retry)
    restarts = stats.restarts
    try:
        for job, outcome in pool.imap(located, prepare, window=window):
            stats.restarts = restarts + pool.restarts
            attempt = job.payload if isinstance(job.payload, _Attempt) else None
            record = attempt.record if attempt is not None else job.payload
            if isinstance(outcome, Done):
                out = _finish(record, rewards, *outcome.value)
                _count(stats, out, outcome.elapsed, timed_out=attempt is not None and attempt.timed_out)
            else:  # lost before it started: nothing to blame on the completion
                values = list(attempt.settled.get(i) for i in range(len(rewards))) if attempt else [None] * len(rewards)
                notes = [*(attempt.notes if attempt else ()), f"worker died ({outcome.reason}) before scoring it"]
                out = _finish(record, rewards, values, None, "; ".join(notes))
                _count(stats, out, outcome.elapsed)
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


def _retry(job: Job, lost: Lost, rewards: Sequence[Reward], timeout: float | None) -> Job | None:
    """The record of a lost worker, to run again from the reward after the one it was in (None: it
    had not started; nothing is settled and a retry could fail the same way for ever).

    The reward it was in is settled: 0.0 when it ran past the record's budget (the completion
    exhausted a limit), null when the worker died otherwise (the machinery failed).
    """
    if lost.progress is None:
        return None
    before = job.payload if isinstance(job.payload, _Attempt) else None
    record = before.record if before is not None else job.payload
    values, running = _partial(lost.progress, len(rewards))
    settled = dict(before.settled) if before is not None else {}
    settled.update({j: values[j] for j in range(min(running, len(rewards))) if j not in settled})
    name = rewards[running].name if running < len(rewards) else "pred extraction"
    if lost.timed_out:
        limit = "--timeout" if timeout is not None else "the limits its rewards declare"
        note = f"{name} ran past the record's time budget ({job.timeout:g} s, from {limit}): scored 0.0"
        if running >= len(rewards):
            note = f"pred extraction ran past the record's time budget ({job.timeout:g} s): no pred"
    else:
        note = f"worker died ({lost.reason}) during {name}: scored null"
    if running < len(rewards):
        settled[running] = 0.0 if lost.timed_out else None
    notes = (*(before.notes if before is not None else ()), note)
    attempt = _Attempt(record, settled, notes, skip_pred=running >= len(rewards),
                       timed_out=lost.timed_out or (before is not None and before.timed_out))
    rest = record_budget(rewards, record, skip=settled)
    return replace(job, payload=attempt, timeout=rest if timeout is None else timeout)


def _remove_sandbox_folders(pid: int) -> None:
    """A worker killed at the timeout (or at the end of the run) never reached the clean-up of the
    code sandbox it was running: remove the folder that sandbox left."""
    from r1cli.sandbox import remove_folders_of

    remove_folders_of(pid)
