r"""A pool of forked worker processes for streams of jobs: per-job timeouts, output in input order.

`ForkPool` runs `work(payload, progress)` on every job of a stream and yields each job with its
`Done` or `Lost` outcome, in input order; `r1cli.scoring` builds `r1 score` on it.

>>> def prepare(n):
...     return Job(payload=n, key=n % 3)
>>> pool = ForkPool(lambda n, progress: n * n, workers=2, timeout=5)
>>> [(job.payload, outcome.value) for job, outcome in pool.imap(range(5), prepare)]
[(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]

How it works, and why:

- **Processes, not threads.** Verifiers are CPU-bound Python (sympy), and math-verify enforces its
  own timeouts with ``signal.alarm``, which works only in a process's main thread. Each worker is
  a process that runs one job at a time.
- **Our own small pool** (not ``concurrent.futures``): work stuck in C code (a huge sympy
  integer power) cannot be interrupted by any signal handler, so a job that runs past its
  timeout (`Job.timeout`, else the pool's) gets its worker SIGKILLed (with the worker's own
  children) and replaced; the job comes out `Lost`, with what its worker had written to its
  shared `progress` slots, and the pool goes on. A `retry` hook may instead hand back the job
  to run again from where it stopped (the rest of a record's rewards), in the fresh worker.
- **'fork' start method, deliberately.** The work function may be a closure (rewards are built by
  factories, and a notebook or a test may register its own), which cannot be pickled: a forked
  worker inherits it as it is. A worker starts in milliseconds with the parent's modules already
  imported; 'spawn' or 'forkserver' would re-import sympy and math-verify (~0.7 s) in every worker
  and in every replacement of a killed one. Import what the work imports lazily before `imap`.
- **Streaming, order kept, bounded memory.** At most `window` jobs, and about `window_bytes` of
  their estimated sizes, are in flight (read and not yet yielded); a job is yielded as soon as it
  and every job before it are done. The window is wide so that while one worker is stuck on a
  job until its timeout, the others keep working (at ~1,000 jobs/s a worker gets through 5,000
  jobs in a 5 s timeout). Input is read by a thread, so outcomes are yielded while a slow
  upstream (``r1 rollout``) produces the next items.
- **Affinity with work stealing.** Jobs with the same `Job.key` go to the same worker (whose
  caches then serve them); an idle worker takes queued jobs (a key's worth) from a busy one.
- **Nothing left behind.** Workers die with the parent (PR_SET_PDEATHSIG on Linux, and they exit
  when their pipe closes); closing the generator (end of input, an exception, Ctrl-C, a closed
  stdout) kills them. Workers ignore Ctrl-C: the parent stops them.
"""

from __future__ import annotations

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
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Most jobs in flight by default, and most estimated bytes in flight.
WINDOW = 16384
WINDOW_BYTES = 64 * 1024 * 1024
# Jobs sent to a worker before it has answered the first: hides the pipe round trip (~50 µs)
# behind the work, which matters when most jobs are cache hits (~20 µs each).
DEPTH = 4
# A job is sent to a busy worker only while the bytes it has not yet read stay under this
# (socket buffers hold ~200 KiB), so the parent never blocks in a send to a stuck worker.
PIPE_BUDGET = 32 * 1024
# Keys remembered as taken over by another worker than their hash's (oldest forgotten first).
MAX_MOVED = 4096
# Workers that die with no job to blame, in a row, before the pool gives up.
MAX_BARREN_DEATHS = 3


@dataclass
class Job:
    """`payload` goes (pickled) to a worker. `key`: jobs with equal keys run in the same worker (None:
    the least loaded one). `size`: estimated bytes held, against `window_bytes`. `tag`: the caller's.
    `timeout`: seconds this job may run (None: the pool's)."""

    payload: Any
    key: Hashable | None = None
    size: int = 1024
    tag: Any = None
    timeout: float | None = None


@dataclass(frozen=True)
class Done:
    """The work returned `value` after `elapsed` seconds in its worker."""

    value: Any
    elapsed: float


@dataclass(frozen=True)
class Lost:
    """The worker was killed at the timeout (`timed_out`) or died (`reason`) `elapsed` s into the job.

    `progress`: the job's progress slots as the worker left them, None if it had not started it."""

    timed_out: bool
    reason: str
    elapsed: float
    progress: tuple[float, ...] | None


class JobFailed(Exception):
    """The work raised one of the pool's `fatal` exception types for `job`: `error`, rebuilt in the parent."""

    def __init__(self, job: Job, error: BaseException) -> None:
        super().__init__(f"{job.tag}: {error}")
        self.job, self.error = job, error


class WorkersDying(Exception):
    """Workers keep dying without running a job; the message says how the last one ended."""


def default_workers() -> int:
    """The CPUs this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ForkPool:
    """Runs `work(payload, progress)` in `workers` forked processes, at most `timeout` seconds a job.

    `progress`: a writable memoryview of `progress_slots` doubles shared with the parent (zeros
    at first, never reset by the pool), which a `Lost` outcome reports: what the
    work had done when it was killed. An exception of a `fatal` type raised by the work stops
    the run: `imap` raises `JobFailed` in the parent at once. Any other exception escaping the
    work kills its worker (the job is `Lost`, "exit code 1"). `restarts` counts the workers
    replaced so far. `on_end(pid)` runs in the parent once a worker has ended and been reaped:
    a killed worker's own clean-up never ran (e.g. the folder of a code sandbox it was running).
    `retry(job, lost)`, in the parent when a job's worker is lost: a job to run in its place
    (same slot, same `size`, first in the fresh worker's queue), or None to yield `lost`.
    """

    def __init__(self, work: Callable[[Any, memoryview], Any], *, workers: int, timeout: float,
                 progress_slots: int = 0, fatal: tuple[type[BaseException], ...] = (),
                 on_end: Callable[[int], None] | None = None,
                 retry: Callable[[Job, Lost], Job | None] | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if timeout <= 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        self.work, self.n, self.timeout = work, workers, timeout
        self.progress_slots, self.fatal = progress_slots, fatal
        self.on_end, self.retry = on_end, retry
        self.restarts = 0

    def imap(self, items: Iterable[Any], prepare: Callable[[Any], Job], *, window: int = WINDOW,
             window_bytes: int = WINDOW_BYTES) -> Iterator[tuple[Job, Done | Lost]]:
        """Each item's `(job, outcome)`, in input order; `prepare(item)` runs in the parent as the item comes in.

        Workers are forked on the first `next()` and killed when the generator ends, is
        closed, or raises (an exception from `items` or `prepare` is raised as it comes in).
        """
        workers: list[_Worker] = []
        feeder: _Feeder | None = None
        state: _State | None = None
        try:
            for _ in range(self.n):
                workers.append(_Worker(self, workers))
            feeder = _Feeder(items)  # after the forks: no thread of ours exists in a worker
            state = _State(self, workers)
            slots: dict[int, _Slot] = {}
            order: deque[int] = deque()
            seq = held = 0
            while True:
                # 1. take in items while the window has room
                while not feeder.done and len(order) < window and held < window_bytes:
                    item = feeder.get()
                    if item is None:
                        break
                    if item is _END:
                        feeder.done = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    job = prepare(item)
                    slots[seq] = _Slot(job)
                    held += job.size
                    order.append(seq)
                    state.assign(seq, job.key)
                    seq += 1
                state.dispatch(slots)
                # 2. yield what is done, in order
                while order and slots[order[0]].outcome is not None:
                    slot = slots.pop(order.popleft())
                    held -= slot.job.size
                    yield slot.job, slot.outcome  # type: ignore[misc]
                if feeder.done and not order:
                    return
                # 3. wait for an answer, a dead worker, new input or the next deadline
                room = not feeder.done and len(order) < window and held < window_bytes
                state.wait(slots, feeder if room else None)
        finally:
            if feeder is not None:
                feeder.close()
            if state is not None:
                state.selector.close()
            for w in workers:  # killed, not asked: a busy one could take `timeout` to listen
                w.end()
                w.release()


_END = object()


@dataclass
class _Slot:
    job: Job
    data: bytes | None = None  # the pickled message, while not yet sent
    outcome: Done | Lost | None = None


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


def _portable(exc: BaseException) -> tuple[Any, ...]:
    """`exc` as (class, args, attributes) that pickle: an R1Error's `hint` is an attribute, not an arg."""
    state = (type(exc), exc.args, dict(vars(exc)))
    try:
        pickle.dumps(state)
    except Exception:  # a class defined in a function, an attribute that does not pickle
        return RuntimeError, (f"{type(exc).__name__}: {exc}",), {}
    return state


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], attrs: dict[str, Any]) -> BaseException:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


def _worker_main(conn: mpc.Connection, pool: ForkPool, progress: memoryview) -> None:
    """The loop of a worker: receive a pickled (seq, payload), answer with the work's value."""
    slots = progress[1:]
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        seq, payload = pickle.loads(data)
        progress[0] = seq
        start = time.perf_counter()
        try:
            value = pool.work(payload, slots)
        except pool.fatal as exc:
            conn.send(("fatal", seq, _portable(exc)))
            continue
        conn.send(("ok", seq, value, time.perf_counter() - start))


def _child(conn: mpc.Connection, closing: list[Any], pool: ForkPool, progress: memoryview, parent: int) -> None:
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
        # the parent's output, so whatever the work prints goes to stderr.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        sys.stdin = None  # type: ignore[assignment]
        sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")
        _worker_main(conn, pool, progress)
    except BaseException:  # noqa: BLE001  a worker must never unwind into the parent's code
        code = 1
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


class _Worker:
    """One worker process, the jobs sent to it (oldest first) and those waiting for it.

    Forked with os.fork rather than multiprocessing.Process: its child bootstrap closes
    sys.stdin, whose lock the input thread holds while it waits for input (a deadlock).
    """

    def __init__(self, pool: ForkPool, others: list[_Worker]) -> None:
        # MAP_SHARED: the worker's writes are seen here. [0]: the seq of the job it runs; then the job's slots.
        self._mem = mmap.mmap(-1, 8 * (1 + pool.progress_slots))
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
            _child(child, closing, pool, self.progress, parent)
        self.pid = pid
        self._on_end = pool.on_end
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
        if self._on_end is not None:
            self._on_end(self.pid)

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


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "killed"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


# ---- the parent: input thread, routing, deadlines ---------------------------------------------


class _Feeder:
    """Reads the input in a thread, so outcomes are yielded while the next items are awaited.

    Items (then `_END` or the exception that stopped the input) go through a small queue; a
    byte on a pipe wakes the parent's `wait`.
    """

    def __init__(self, items: Iterable[Any], size: int = 64) -> None:
        self.items: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)
        self._lock = threading.Lock()
        self._closed = False
        self._thread_done = False
        self.done = False
        self._thread = threading.Thread(target=self._run, args=(iter(items),), name="r1-pool-input", daemon=True)
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


class _State:
    """Routing, sending, answers, deadlines and replacements for `ForkPool.imap`'s loop."""

    def __init__(self, pool: ForkPool, workers: list[_Worker]) -> None:
        self.pool, self.workers, self.timeout = pool, workers, pool.timeout
        self.barren = 0  # deaths in a row without an answer in between
        # A worker's pipe turns readable with an answer, or at EOF when the worker died; the
        # input thread's pipe, when an item came in. Registered once: wait() runs per answer.
        self.selector = selectors.DefaultSelector()
        for i, w in enumerate(workers):
            self.selector.register(w.conn, selectors.EVENT_READ, i)
        self.input_fd: int | None = None
        self.moved: dict[Hashable, int] = {}  # keys an idle worker took over

    def assign(self, seq: int, key: Hashable | None) -> None:
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
                    slot.data = pickle.dumps((seq, slot.job.payload), protocol=pickle.HIGHEST_PROTOCOL)
                if not w.can_take(len(slot.data)) or not self._send(w, seq, slot.data):
                    break
                slot.data = None  # pickled again if its worker is killed before it starts
                w.backlog.popleft()

    def _steal(self, i: int, slots: dict[int, _Slot]) -> None:
        """Idle worker i takes the oldest waiting job of the busiest worker, with the jobs that
        share its key (their caches are filled once more, not once each): all of them, and the
        jobs of that key still to come, when they are at most half of what waits there; else
        the older half of them."""
        busiest = max(self.workers, key=lambda v: len(v.backlog))
        if not busiest.backlog:
            return
        key = slots[busiest.backlog[0]].job.key
        if key is None:
            same = [busiest.backlog[0]]
        else:
            same = [seq for seq in busiest.backlog if slots[seq].job.key == key]
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
        except OSError:  # the worker died: its pipe's EOF is seen in `wait`
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
        deadline = min((w.started + self._limit(w, slots) for w in busy), default=None)
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
            if w.sent and now >= w.started + self._limit(w, slots):
                self._replace(i, slots, timed_out=True)

    def _limit(self, w: _Worker, slots: dict[int, _Slot]) -> float:
        """Seconds the job `w` runs now may take."""
        limit = slots[w.sent[0]].job.timeout
        return self.timeout if limit is None else limit

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
            raise JobFailed(slot.job, _rebuild(*msg[2]))
        _, _, value, elapsed = msg
        w.sent.popleft()
        w.sizes.popleft()
        w.started = time.monotonic()
        self.barren = 0
        slot.outcome = Done(value, elapsed)

    def _replace(self, i: int, slots: dict[int, _Slot], *, timed_out: bool) -> None:
        """Kill worker i (or bury it), settle the job it was running, start another."""
        w = self.workers[i]
        elapsed = time.monotonic() - w.started
        self.selector.unregister(w.conn)
        w.end()
        reason = _exit_reason(w.exitcode)
        retried = None
        if w.sent:
            seq = w.sent.popleft()
            started = int(w.progress[0]) == seq
            progress = tuple(w.progress[1:]) if started else None
            lost = Lost(timed_out, "timeout" if timed_out else reason, elapsed, progress)
            again = None if self.pool.retry is None else self.pool.retry(slots[seq].job, lost)
            if again is None:
                slots[seq].outcome = lost
            else:
                slots[seq].job, slots[seq].data = again, None
                retried = seq
            self.barren = 0
        else:
            self.barren += 1
            if self.barren >= MAX_BARREN_DEATHS:
                w.release()
                raise WorkersDying(reason)
        self.pool.restarts += 1
        w.backlog.extendleft(reversed(w.sent))  # sent but not started: send them again
        if retried is not None:
            w.backlog.appendleft(retried)  # the oldest of them all: first again
        w.release()
        fresh = _Worker(self.pool, self.workers[:i] + self.workers[i + 1:])
        fresh.backlog = w.backlog
        self.workers[i] = fresh
        self.selector.register(fresh.conn, selectors.EVENT_READ, i)
