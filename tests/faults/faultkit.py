"""What the fault tests share: `r1` as real processes, killed, starved of disk, fed bad data.

Every command runs as `python -m r1cli …` in its own process group (a new session), as it
would from a shell; a kill is `os.killpg(pgid, SIGKILL)`, so its worker processes die with it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

R1 = [sys.executable, "-m", "r1cli"]
ROOT = Path(__file__).resolve().parents[2]


def r1_env(**extra: str) -> dict[str, str]:
    """The test session's environment (R1_HOME, HF_HUB_OFFLINE from tests/conftest.py) plus `extra`."""
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", **extra}


def run_r1(*args: Any, timeout: float = 300, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """`r1 ARGS` to the end: stdout and stderr as text."""
    return subprocess.run([*R1, *map(str, args)], check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env or r1_env(), **kwargs)


def start_r1(*args: Any, log: Path, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """`r1 ARGS` in a new process group, stdout discarded, stderr to `log`."""
    with open(log, "wb") as err:
        return subprocess.Popen([*R1, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                                env=env or r1_env(), start_new_session=True, **kwargs)


def kill_group(proc: subprocess.Popen) -> bool:
    """SIGKILL the process group of `proc` (kill -9 of the command and its workers); True if it was running."""
    running = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return running


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


# ---- records ---------------------------------------------------------------------------------------


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return parse_jsonl(path.read_bytes().decode("utf-8"))


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def whole_lines(path: Path) -> int:
    """Lines in `path`, asserting there is no partial last line and every line is a JSON object."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} ends mid-line: {data[-80:]!r}"
    lines = data.decode("utf-8").splitlines()
    for i, line in enumerate(lines, start=1):
        assert isinstance(json.loads(line), dict), f"{path}:{i} is not an object"
    return len(lines)


def size(path: Path) -> int:
    """Bytes in `path` now, 0 when it does not exist (a running command may rename it meanwhile)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def complete_lines(path: Path) -> int:
    """Newline-terminated lines in `path` now (0 when it does not exist): a running command's progress."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def multiset(records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Records as a multiset of canonical JSON texts."""
    return Counter(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)


def keys(records: Iterable[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((r["id"], r["sample"]) for r in records)


# ---- kill -9 at random moments -----------------------------------------------------------------------


@dataclass
class Timed:
    """An uninterrupted run: when its output first grew and when it ended (seconds after its start)."""

    first_output: float
    end: float

    @property
    def productive(self) -> float:
        return max(self.end - self.first_output, 0.05)


def timed_run(args: Sequence[Any], progress: Callable[[], float], log: Path, timeout: float = 300) -> Timed:
    """Run `r1 ARGS` to the end, noting when `progress()` (0..1) first moves: the window kills aim at."""
    proc = start_r1(*args, log=log)
    start = time.monotonic()
    first = None
    deadline = start + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if first is None and progress() > 0:
            first = time.monotonic() - start
        time.sleep(0.01)
    if proc.poll() is None:
        kill_group(proc)
        raise AssertionError(f"r1 {' '.join(map(str, args))} did not finish in {timeout} s")
    end = time.monotonic() - start
    assert proc.returncode == 0, log.read_text()[-3000:]
    return Timed(first_output=end if first is None else first, end=end)


@dataclass
class Kill:
    """One kill: how far into the productive phase it was aimed, and whether it hit a running command."""

    moment: float  # seconds after the output first moved
    progress: float  # the share of the output written when the kill came
    landed: bool

    def __str__(self) -> str:
        return f"{self.moment:.2f} s ({self.progress:.0%} done{'' if self.landed else ', already finished'})"


def kill_while_writing(proc: subprocess.Popen, progress: Callable[[], float], window: float, rng: random.Random,
                       timeout: float = 300) -> Kill:
    """SIGKILL `proc`'s group at a random moment of its productive phase.

    The phase starts when `progress()` (the share of the output written, 0..1) moves past where it
    stood. One uniform draw u picks the moment: u × the time the uninterrupted run took for the
    work that is left (`window` × what is left), or the point where a share u of what is left has
    been written, whichever comes first (a machine faster than the measured run still gets its
    kill while writing).
    """
    before = progress()
    moving = wait_for(lambda: proc.poll() is not None or progress() > before, timeout)
    assert moving, f"no progress in {timeout} s"
    u, now = rng.uniform(0.0, 1.0), progress()
    moment = u * window * max(1.0 - now, 0.05)
    target = now + u * (1.0 - now)
    wait_for(lambda: proc.poll() is not None or progress() >= target, moment)
    at = progress()
    landed = kill_group(proc)
    if not landed:
        assert proc.returncode == 0, f"exit status {proc.returncode}"
    return Kill(moment, at, landed)


@dataclass
class Kills:
    """What `kill_and_rerun` did."""

    kills: list[Kill] = field(default_factory=list)

    @property
    def landed(self) -> int:
        return sum(k.landed for k in self.kills)

    def __str__(self) -> str:
        return f"{self.landed} of {len(self.kills)} kills landed, at " + ", ".join(map(str, self.kills))


def kill_and_rerun(args: Sequence[Any], *, progress: Callable[[], float], window: Timed, rng: random.Random,
                   logs: Path, kills: int = 3, timeout: float = 300,
                   after_kill: Callable[[int], None] | None = None) -> Kills:
    """Run `r1 ARGS` `kills` times, each killed with SIGKILL while it writes (`kill_while_writing`,
    aimed from the uninterrupted `window` run), then once more to the end, which must succeed.
    `after_kill(i)` checks the state a kill left."""
    done = Kills()
    for i in range(kills):
        log = logs / f"kill-{i}.log"
        proc = start_r1(*args, log=log)
        try:
            done.kills.append(kill_while_writing(proc, progress, window.productive, rng, timeout))
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {log.read_text()[-3000:]}") from None
        finally:
            kill_group(proc)
        if after_kill is not None:
            after_kill(i)
    proc = start_r1(*args, log=logs / "final.log")
    try:
        proc.wait(timeout)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, (logs / "final.log").read_text()[-3000:]
    return done


# ---- processes left behind ----------------------------------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes (zombies aside) whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != b"Z":
            found.append(int(name))
    return found
