"""The adapters from r1cli rewards to TRL's batched reward-function call.

TRL's GRPOTrainer calls each reward function as ``fn(prompts=[…], completions=[…],
completion_ids=[…], **columns)`` where every dataset column arrives as a list aligned with
the completions (plus `trainer_state`, `log_extra`, `log_metric`), and expects one float or
None per completion. TRL names the logged metric ``rewards/<fn.__name__>/mean`` and applies
`reward_weights` itself, so the adapters return unweighted values.

`PooledRewards` is what `r1 grpo` uses: it scores each batch through `r1cli.scoring`'s worker
pool, as `r1 score` does, so the batch's completions are scored in parallel and each within its
time budget (a hang scores 0.0 and training goes on). `to_trl` scores one reward in this process,
unbounded: for notebooks and tests.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from r1cli.rewards import Reward, completion_text

# Keywords TRL passes that are not per-completion columns.
_NOT_COLUMNS = frozenset({"trainer_state", "log_extra", "log_metric", "completion_ids", "prompts", "completions",
                          "environments"})
_STOP = object()


def batch_records(prompts: Sequence[Any] | None, completions: Sequence[Any],
                  completion_ids: Sequence[Sequence[int]] | None, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per completion, from TRL's batch call: its columns, `prompt`, `completion`, and
    `completion_tokens` from `completion_ids` (unless the dataset has that column)."""
    columns = {k: v for k, v in kwargs.items() if k not in _NOT_COLUMNS and isinstance(v, (list, tuple))}
    records = []
    for i, completion in enumerate(completions):
        record = {k: v[i] for k, v in columns.items() if i < len(v)}
        if prompts is not None and i < len(prompts):
            record["prompt"] = prompts[i]
        if completion_ids is not None and i < len(completion_ids) and record.get("completion_tokens") is None:
            record["completion_tokens"] = len(completion_ids[i])
        record["completion"] = completion
        records.append(record)
    return records


def to_trl(reward: Reward) -> Callable[..., list[float | None]]:
    """Wrap `reward` as a TRL reward function named after it, run in this process without a time bound.

    Completions may be strings or lists of assistant messages. `completion_ids`, when TRL gives
    them, become each record's `completion_tokens` (unless the dataset has that column).

    >>> from r1cli.rewards import resolve
    >>> fn = to_trl(resolve(["accuracy"])[0])
    >>> chat = [{"role": "assistant", "content": "\\\\boxed{4}"}]
    >>> fn.__name__, fn(prompts=["2+2?", "3+3?"], completions=[chat, "7"], answer=["4", "6"])
    ('accuracy', [1.0, 0.0])
    """

    def reward_fn(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                  completion_ids: Sequence[Sequence[int]] | None = None, **kwargs: Any) -> list[float | None]:
        values: list[float | None] = []
        for record in batch_records(prompts, completions, completion_ids, kwargs):
            text = completion_text(record.pop("completion"))
            value = None if text is None else reward.fn(text, **record)
            values.append(None if value is None else float(value))
        return values

    reward_fn.__name__ = reward_fn.__qualname__ = reward.name
    return reward_fn


class PooledRewards:
    """TRL reward functions (`functions`) that score each batch through one long-lived worker pool.

    TRL calls the reward functions one after another with the same `completions` list: the first
    call scores every reward on the batch in the pool (`r1cli.scoring.score_located`), the others
    read their column. The pool's workers are forked on the first batch and kept for the whole run
    (their caches too: parsed gold answers); `close` ends them. `workers`, `timeout`: as
    `score_located` (None: one per CPU; each record's budget from its rewards' limits). Records
    killed past their budget are logged per batch as the metric ``score/timed_out``.

    >>> from r1cli.rewards import resolve
    >>> pooled = PooledRewards(resolve(["accuracy", "format"]), workers=1)
    >>> acc, fmt = pooled.functions()
    >>> batch = dict(prompts=["2+2?", "3+3?"], completions=["<think>x</think><answer>4</answer>", "7"], answer=["4", "6"])
    >>> acc(**batch), fmt(**batch), pooled.batches
    ([1.0, 0.0], [1.0, 0.0], 1)
    >>> pooled.close()
    """

    def __init__(self, rewards: Sequence[Reward], *, workers: int | None = None, timeout: float | None = None) -> None:
        self.rewards = list(rewards)
        self.workers, self.timeout = workers, timeout
        self.batches = 0
        self._queue: queue.Queue[Any] | None = None
        self._scored: Iterator[dict[str, Any]] | None = None
        self._last: tuple[Sequence[Any], list[dict[str, Any]]] | None = None  # (completions, scored records)

    def functions(self) -> list[Callable[..., list[float | None]]]:
        """One TRL reward function per reward, named after it, in the rewards' order."""
        return [self._function(reward.name) for reward in self.rewards]

    def _function(self, name: str) -> Callable[..., list[float | None]]:
        def reward_fn(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                      completion_ids: Sequence[Sequence[int]] | None = None, **kwargs: Any) -> list[float | None]:
            # the same list object as the last call's: the same batch, already scored (the
            # reference held in `_last` keeps its id from being reused by another list)
            if self._last is None or self._last[0] is not completions:
                scored = self.score(batch_records(prompts, completions, completion_ids, kwargs))
                self._last = (completions, scored)
                log_metric = kwargs.get("log_metric")
                if callable(log_metric):
                    log_metric("score/timed_out", float(sum("ran past" in r.get("score_error", "") for r in scored)))
            return [r["rewards"][name] for r in self._last[1]]

        reward_fn.__name__ = reward_fn.__qualname__ = name
        return reward_fn

    def score(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The scored records of one batch, in order (see `r1cli.scoring.score_located`)."""
        from r1cli.scoring import score_located

        self.batches += 1
        if self._scored is None:
            self._queue = queue.Queue()
            self._scored = score_located(iter(self._queue.get, _STOP), self.rewards, workers=self.workers,
                                         timeout=self.timeout)
        assert self._queue is not None
        for i, record in enumerate(records):
            self._queue.put((f"batch {self.batches}, completion {i + 1}", record))
        try:
            return list(itertools.islice(self._scored, len(records)))
        except BaseException:
            self.close()  # a reward's R1Error (bad data), Ctrl-C: the pool is done
            raise

    def close(self) -> None:
        """End the pool's workers (and its input thread); a later batch starts a new pool."""
        if self._queue is not None:
            self._queue.put(_STOP)
        if self._scored is not None:
            self._scored.close()  # type: ignore[attr-defined]
        self._queue = self._scored = None
        self._last = None
