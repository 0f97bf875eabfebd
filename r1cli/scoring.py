r"""Score completion records with reward functions: worker processes, per-record timeouts, order kept.

`score_records` is what `r1 score` runs, and what a notebook or `r1 eval` calls:

>>> from r1cli import rewards
>>> recs = [{"completion": "<think>2+2</think><answer>4</answer>", "answer": "4"}]
>>> [(r["rewards"], r["reward"], r["pred"]) for r in score_records(recs, rewards.resolve(["accuracy", "format:0.5"]))]
[({'accuracy': 1.0, 'format': 1.0}, 1.5, '4')]
>>> [r["rewards"] for r in score_records(recs, ["tags"], workers=0)]
[{'tags': 1.0}]

How it works, and why:

- **Processes, not threads.** Verifiers are CPU-bound Python (sympy), and math-verify enforces its
  own timeouts with ``signal.alarm``, which works only in a process's main thread. Each worker is
  a process that scores one record at a time.
- **Our own small pool** (not ``concurrent.futures``): a reward stuck in C code (a huge sympy
  integer power) cannot be interrupted by any signal handler, so a record that runs past
  `timeout` gets its worker SIGKILLed (with the worker's own children) and replaced; the record
  gets null for the rewards it did not finish and a ``score_error`` note, and scoring goes on.
- **'fork' start method, deliberately.** Rewards are closures built by factories (and a notebook
  or a test may register its own), which cannot be pickled: a forked worker inherits them as
  they are. A worker starts in milliseconds with the parent's modules already imported; 'spawn'
  or 'forkserver' would re-import sympy and math-verify (~0.7 s) in every worker and in every
  replacement of a killed one. The modules the built-in rewards import lazily are imported in
  the parent before the first fork (`PRELOAD`).
- **Streaming, order kept, bounded memory.** At most `window` records, and about `WINDOW_BYTES`
  of completions, are in flight (read and not yet written); a record is yielded as soon as it
  and every record before it are done. The window is wide so that while one worker is stuck on
  a record until its timeout, the others keep working (at ~1,000 records/s a worker gets through
  5,000 records in a 5 s timeout). Input is read by a thread, so results are written while a
  slow upstream (``r1 rollout``) produces the next records.
- **Cache hits.** The samples of a GRPO group share a gold answer and repeat each other's
  answers, and the rewards cache per process (``accuracy``: parsed golds, and verdicts by (gold,
  prediction)). Records with the same (task, gold answer) go to the same worker (`route_key`),
  so a group's gold is parsed once and its repeated answers hit the verdict cache; an idle
  worker takes queued records (a key's worth) from a busy one rather than wait. Measured on
  8,000 arithmetic completions, 2 workers: 20–30% less worker CPU than routing by (gold,
  extracted prediction), or than no routing; it also spares the parent a prediction extraction
  (a regex pass it could not time out).
- **Nothing left behind.** Workers die with the parent (PR_SET_PDEATHSIG on Linux, and they exit
  when their pipe closes); closing the generator (end of input, an exception, Ctrl-C, a closed
  stdout) kills them. Workers ignore Ctrl-C: the parent stops them.
"""

from __future__ import annotations

import importlib
import math
import mmap
import multiprocessing
import multiprocessing.connection as mpc
import os
import pickle
import queue
import selectors
import signal
import sys
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1cli import errors
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
# Most records in flight by default, and most bytes of completions (estimated) in flight.
WINDOW = 16384
WINDOW_BYTES = 64 * 1024 * 1024
# Records sent to a worker before it has answered the first: hides the pipe round trip (~50 µs)
# behind the work, which matters when most records are verdict-cache hits (~20 µs each).
DEPTH = 4
# A record is sent to a busy worker only while the bytes it has not yet read stay under this
# (socket buffers hold ~200 KiB), so the parent never blocks in a send to a stuck worker.
PIPE_BUDGET = 32 * 1024
# Keys remembered as taken over by another worker than their hash's (oldest forgotten first).
MAX_MOVED = 4096
# Workers that die with nothing to blame, in a row, before scoring gives up.
MAX_BARREN_DEATHS = 3


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


def default_workers() -> int:
    """The CPUs this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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
    default parameters. `workers`: processes (default: the CPUs available); 0 scores in this process, without the
    per-record timeout (for debugging: breakpoints, profilers). `timeout`: seconds a record may
    take; past it the worker is killed and replaced. `window`: most records in flight (default
    `WINDOW`; fewer when their completions pass `WINDOW_BYTES`). `affinity`: score the records
    of one (task, gold answer) in one worker (`route_key`: cache hits). A record without a text
    `completion` raises BadInput naming `where`; so does a reward's own R1Error (e.g. an
    unknown task).
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
    any other exception makes that reward null and is noted. `progress` (shared with the parent)
    records which reward runs and the values so far, for the note if the worker is killed.
    """
    text = completion_text(record.get("completion"))
    fields = {k: v for k, v in record.items() if k != "completion"}
    values: list[float | None] = []
    notes: list[str] = []
    for i, reward in enumerate(rewards):
        if progress is not None:
            progress[1] = i
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
            progress[2 + i] = math.nan if value is None else value
    if progress is not None:
        progress[1] = len(rewards)
    pred = extract_pred(text, fields, rewards) if text is not None else None
    return values, pred, "; ".join(notes) or None


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


# ---- the worker process -----------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the parent dies (even by SIGKILL); best effort."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(0)


def _worker_main(conn: mpc.Connection, rewards: list[Reward], progress: memoryview) -> None:
    """The loop of a worker: receive a pickled (seq, record), answer with its values."""
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        seq, record = pickle.loads(data)
        progress[0] = seq
        start = time.perf_counter()
        try:
            values, pred, error = _values(record, rewards, progress)
        except R1Error as exc:
            conn.send(("fatal", seq, type(exc).__name__, exc.message, exc.hint))
            continue
        conn.send(("ok", seq, values, pred, error, time.perf_counter() - start))


def _child(conn: mpc.Connection, closing: list[Any], rewards: list[Reward], progress: memoryview, parent: int) -> None:
    """Set up a freshly forked worker, run its loop, and leave with os._exit (never returns)."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the parent decides, and kills its workers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent(parent)
        for other in closing:  # the parent's pipe ends: each worker must see EOF when the parent goes
            other.close()
        # Only fds are touched, never the inherited stream objects: a thread of the parent (the
        # input reader, a progress bar) may have held their locks at fork time. stdout carries
        # the parent's records, so whatever a reward prints goes to stderr.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        sys.stdin = None  # type: ignore[assignment]
        sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")
        _worker_main(conn, rewards, progress)
    except BaseException:  # noqa: BLE001  a worker must never unwind into the parent's code
        code = 1
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


@dataclass
class _Slot:
    where: str
    record: Mapping[str, Any]
    key: tuple[str, str] | None
    size: int  # estimated bytes held
    data: bytes | None = None  # the pickled message, while not yet sent
    result: dict[str, Any] | None = None


class _Worker:
    """One worker process, the records sent to it (oldest first) and those waiting for it.

    Forked with os.fork rather than multiprocessing.Process: its child bootstrap closes
    sys.stdin, whose lock the input thread holds while it waits for input (a deadlock).
    """

    def __init__(self, rewards: list[Reward], others: list[_Worker]) -> None:
        self._mem = mmap.mmap(-1, 8 * (2 + len(rewards)))  # MAP_SHARED: the worker's writes are seen here
        self.progress = memoryview(self._mem).cast("d")
        self.progress[0] = -1
        self.conn, child = multiprocessing.Pipe()
        closing = [self.conn] + [w.conn for w in others if not w.conn.closed]
        parent = os.getpid()
        with warnings.catch_warnings():
            # Python ≥ 3.12 warns about forking with threads alive (the input reader, a progress
            # bar): the child touches none of their locks (see `_child`).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _child(child, closing, rewards, self.progress, parent)
        self.pid = pid
        child.close()
        self.exitcode: int | None = None
        self.sent: deque[int] = deque()  # seqs sent and not answered; the first one is running
        self.sizes: deque[int] = deque()
        self.backlog: deque[int] = deque()  # seqs routed here, not yet sent
        self.started = 0.0  # when the first of `sent` started

    def load(self) -> int:
        return len(self.sent) + len(self.backlog)

    def can_take(self, size: int) -> bool:
        if not self.sent:
            return True
        unread = sum(self.sizes) - self.sizes[0]
        return len(self.sent) < DEPTH and unread + size <= PIPE_BUDGET

    def alive(self) -> bool:
        if self.exitcode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode is None

    def end(self) -> None:
        """SIGKILL the process (and what it started), reap it, close the pipe."""
        if self.alive():
            _kill_tree(self.pid)
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
        self.conn.close()

    def release(self) -> None:
        """Free the shared memory once the process has ended."""
        self.progress.release()
        self._mem.close()


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker and whatever it started (a code sandbox), children first."""
    try:
        import psutil

        children = psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing or the process already gone: the worker alone
        children = []
    for proc in [*children]:
        try:
            proc.kill()
        except Exception:
            pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---- the parent: input thread, routing, deadlines ---------------------------------------------

_END = object()


class _Feeder:
    """Reads the input in a thread, so results are written while the next records are awaited.

    Items (records, then `_END` or the exception that stopped the input) go through a small
    queue; a byte on a pipe wakes the parent's `wait`.
    """

    def __init__(self, located: Iterable[tuple[str, Mapping[str, Any]]], size: int = 64) -> None:
        self.items: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)
        self._lock = threading.Lock()
        self._closed = False
        self._thread_done = False
        self.done = False
        self._thread = threading.Thread(target=self._run, args=(iter(located),), name="r1-score-input", daemon=True)
        self._thread.start()

    def _run(self, it: Iterator[Any]) -> None:
        # Blocked in a read of stdin, this thread holds the stream's lock; should the interpreter
        # exit meanwhile (Ctrl-C, an error, a closed stdout) and close sys.stdin, it would abort
        # ("could not acquire lock … at interpreter shutdown"). References held by this daemon
        # thread's frame keep sys.stdin from being closed at exit.
        pinned = (sys.stdin, sys.__stdin__)  # noqa: F841
        try:
            while not self._closed:
                try:
                    item = next(it)
                except StopIteration:
                    item = _END
                except BaseException as exc:  # noqa: BLE001  handed to the parent, which raises it
                    item = exc
                while not self._put(item):
                    if self._closed:
                        return
                if item is _END or isinstance(item, BaseException):
                    return
        finally:
            with self._lock:
                if self._closed:
                    self._close_fds()
                self._thread_done = True

    def _put(self, item: Any) -> bool:
        try:
            self.items.put(item, timeout=0.1)
        except queue.Full:
            return False
        if self.items.qsize() <= 1:  # the parent may be waiting for it (else it is busy taking them)
            with self._lock:
                if not self._closed:
                    try:
                        os.write(self.wfd, b"\0")
                    except BlockingIOError:  # the pipe is full of wake-ups already
                        pass
        return True

    def get(self) -> Any:
        """The next item, or None when none is ready."""
        try:
            return self.items.get_nowait()
        except queue.Empty:
            return None

    def clear_wakeups(self) -> None:
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._thread_done:
                self._close_fds()
        # A thread blocked in next() on a slow input keeps the pipe until it returns; it is a
        # daemon thread and closes the pipe itself.

    def _close_fds(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = -1


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
    workers: list[_Worker] = []
    feeder: _Feeder | None = None
    pool: _Pool | None = None
    try:
        for _ in range(n):
            workers.append(_Worker(rewards, workers))
        feeder = _Feeder(located)  # after the forks: no thread of ours exists in a worker
        pool = _Pool(rewards, workers, timeout, stats)
        slots: dict[int, _Slot] = {}
        order: deque[int] = deque()
        seq = held = 0
        while True:
            # 1. take in records while the window has room
            while not feeder.done and len(order) < window and held < WINDOW_BYTES:
                item = feeder.get()
                if item is None:
                    break
                if item is _END:
                    feeder.done = True
                    break
                if isinstance(item, BaseException):
                    raise item
                where, record = item
                text = check_record(where, record)
                _note_missing(stats, record, rewards)
                key = route_key(record) if affinity else None
                slots[seq] = _Slot(where, record, key=key, size=len(text) + 1024)
                held += slots[seq].size
                order.append(seq)
                pool.assign(seq, key)
                seq += 1
            pool.dispatch(slots)
            # 2. write what is done, in order
            while order and slots[order[0]].result is not None:
                slot = slots.pop(order.popleft())
                held -= slot.size
                yield slot.result  # type: ignore[misc]
            if feeder.done and not order:
                return
            # 3. wait for an answer, a dead worker, new input or the next deadline
            pool.wait(slots, feeder if not feeder.done and len(order) < window and held < WINDOW_BYTES else None)
    finally:
        if feeder is not None:
            feeder.close()
        if pool is not None:
            pool.selector.close()
        for w in workers:  # killed, not asked: a busy one could take `timeout` to listen
            w.end()
            w.release()


class _Pool:
    """Routing, sending, answers, deadlines and replacements for the parent's loop."""

    def __init__(self, rewards: list[Reward], workers: list[_Worker], timeout: float, stats: ScoreStats) -> None:
        self.rewards, self.workers, self.timeout, self.stats = rewards, workers, timeout, stats
        self.barren = 0  # deaths in a row without an answer in between
        # A worker's pipe turns readable with an answer, or at EOF when the worker died; the
        # input thread's pipe, when a record came in. Registered once: wait() runs per answer.
        self.selector = selectors.DefaultSelector()
        for i, w in enumerate(workers):
            self.selector.register(w.conn, selectors.EVENT_READ, i)
        self.input_fd: int | None = None
        self.moved: dict[tuple[str, str], int] = {}  # keys an idle worker took over

    def assign(self, seq: int, key: tuple[str, str] | None) -> None:
        if key is not None:
            i = self.moved.get(key)
            w = self.workers[hash(key) % len(self.workers) if i is None else i]
        else:
            w = min(self.workers, key=_Worker.load)
        w.backlog.append(seq)

    def dispatch(self, slots: dict[int, _Slot]) -> None:
        for i, w in enumerate(self.workers):
            if not w.backlog and not w.sent:
                self._steal(i, slots)
            while w.backlog:
                seq = w.backlog[0]
                slot = slots[seq]
                if slot.data is None:
                    slot.data = pickle.dumps((seq, slot.record), protocol=pickle.HIGHEST_PROTOCOL)
                if not w.can_take(len(slot.data)) or not self._send(w, seq, slot.data):
                    break
                slot.data = None  # pickled again if its worker is killed before it starts
                w.backlog.popleft()

    def _steal(self, i: int, slots: dict[int, _Slot]) -> None:
        """Idle worker i takes the oldest waiting record of the busiest worker, with the records
        that share its key (their gold is parsed once more, not once each): all of them, and the
        records of that key still to come, when they are at most half of what waits there;
        else the older half of them."""
        busiest = max(self.workers, key=lambda v: len(v.backlog))
        if not busiest.backlog:
            return
        key = slots[busiest.backlog[0]].key
        same = [seq for seq in busiest.backlog if slots[seq].key == key] if key is not None else [busiest.backlog[0]]
        half = (len(busiest.backlog) + 1) // 2
        taken = set(same[:half])
        busiest.backlog = deque(seq for seq in busiest.backlog if seq not in taken)
        self.workers[i].backlog.extend(sorted(taken))
        if key is not None and len(same) <= half:
            self.moved[key] = i
            if len(self.moved) > MAX_MOVED:
                del self.moved[next(iter(self.moved))]

    def _send(self, w: _Worker, seq: int, data: bytes) -> bool:
        try:
            w.conn.send_bytes(data)
        except OSError:  # the worker died: its sentinel fires in `wait`
            return False
        if not w.sent:
            w.started = time.monotonic()
        w.sent.append(seq)
        w.sizes.append(len(data))
        return True

    def wait(self, slots: dict[int, _Slot], feeder: _Feeder | None) -> None:
        """Until an answer, a dead worker, new input (when `feeder` is given) or the next deadline."""
        fd = feeder.rfd if feeder is not None else None
        if fd != self.input_fd:
            if self.input_fd is not None:
                self.selector.unregister(self.input_fd)
            if fd is not None:
                self.selector.register(fd, selectors.EVENT_READ, -1)
            self.input_fd = fd
        busy = [w for w in self.workers if w.sent]
        deadline = min((w.started + self.timeout for w in busy), default=None)
        limit = None if deadline is None else max(0.0, deadline - time.monotonic())
        # Never asleep for long: a wake-up lost to a race with the input thread costs at most 1 s.
        limit = 1.0 if limit is None else min(limit, 1.0)
        ready = {key.data for key, _ in self.selector.select(limit)}
        if -1 in ready and feeder is not None:
            feeder.clear_wakeups()
        for i in sorted(ready - {-1}):
            self._answers(i, slots)
        now = time.monotonic()
        for i, w in enumerate(self.workers):
            if w.sent and now >= w.started + self.timeout:
                self._replace(i, slots, timed_out=True)

    def _answers(self, i: int, slots: dict[int, _Slot]) -> None:
        w = self.workers[i]
        try:
            while w.conn.poll():
                self._answer(w, w.conn.recv(), slots)
        except (EOFError, OSError):  # the worker died
            self._replace(i, slots, timed_out=False)

    def _answer(self, w: _Worker, msg: tuple[Any, ...], slots: dict[int, _Slot]) -> None:
        kind, seq = msg[0], msg[1]
        slot = slots[seq]
        if kind == "fatal":
            cls = getattr(errors, msg[2], R1Error)
            cls = cls if isinstance(cls, type) and issubclass(cls, R1Error) else R1Error
            raise cls(f"{slot.where}: {msg[3]}", hint=msg[4])
        _, _, values, pred, error, elapsed = msg
        w.sent.popleft()
        w.sizes.popleft()
        w.started = time.monotonic()
        self.barren = 0
        slot.result = _finish(slot.record, self.rewards, values, pred, error)
        slot.record = {}
        _count(self.stats, slot.result, elapsed)

    def _replace(self, i: int, slots: dict[int, _Slot], *, timed_out: bool) -> None:
        """Kill worker i (or bury it), settle the record it was running, start another."""
        w = self.workers[i]
        elapsed = time.monotonic() - w.started
        self.selector.unregister(w.conn)
        w.end()
        reason = _exit_reason(w.exitcode)
        if w.sent:
            seq = w.sent.popleft()
            slot = slots[seq]
            values, running = self._partial(w, seq)
            name = self.rewards[running].name if running < len(self.rewards) else "pred extraction"
            if timed_out:
                note = f"timeout after {self.timeout:g} s ({name})"
            else:
                note = f"worker died ({reason}) during {name}"
            slot.result = _finish(slot.record, self.rewards, values, None, note)
            slot.record = {}
            _count(self.stats, slot.result, elapsed, timed_out=timed_out)
            self.barren = 0
        else:
            self.barren += 1
            if self.barren >= MAX_BARREN_DEATHS:
                w.release()
                raise R1Error(f"scoring workers keep dying ({reason})",
                              hint="rerun with --workers 0 to score in one process and see the error")
        self.stats.restarts += 1
        w.backlog.extendleft(reversed(w.sent))  # sent but not started: send them again
        w.release()
        fresh = _Worker(self.rewards, self.workers[:i] + self.workers[i + 1:])
        fresh.backlog = w.backlog
        self.workers[i] = fresh
        self.selector.register(fresh.conn, selectors.EVENT_READ, i)

    def _partial(self, w: _Worker, seq: int) -> tuple[list[float | None], int]:
        """The values a killed worker finished for record `seq`, and the index of the reward it was in."""
        n = len(self.rewards)
        if int(w.progress[0]) != seq:
            return [None] * n, 0
        running = int(w.progress[1])
        values: list[float | None] = []
        for j in range(n):
            v = w.progress[2 + j]
            values.append(None if j >= running or math.isnan(v) else v)
        return values, running


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "killed"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
