"""The output disk fills up: a clear error (exit 1), and no partial last line left behind.

Two ways to fill it: a small tmpfs mounted for the test (where mounting is allowed: root), and
a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that a write fails with EFBIG instead
of killing the process), which works everywhere. An output is then either absent or ends with
a newline and parses line by line; with --resume the partial file is kept, and once there is
room again the same command finishes it with every record exactly once.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import (
    R1,
    ROOT,
    keys,
    multiset,
    parse_jsonl,
    r1_env,
    read_jsonl,
    run_r1,
    whole_lines,
    write_jsonl,
)

CAPACITY = 64 * 1024  # bytes: a few hundred records


@dataclass
class Disk:
    """Where outputs go, and how a command is run so that only CAPACITY bytes fit."""

    kind: str
    dir: Path
    preexec: Callable[[], None] | None
    errors: tuple[str, ...]

    def run(self, *args: object, stdout: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """`r1 ARGS` with the disk this small; `stdout`: redirect stdout into that file (`> FILE`)."""
        with open(stdout or os.devnull, "wb") as out:
            return subprocess.run([*R1, *map(str, args)], check=False, stdout=out, stderr=subprocess.PIPE, cwd=ROOT,
                                  env=r1_env(), timeout=timeout, preexec_fn=self.preexec)

    def make_room(self) -> None:
        """Free space again: lift the limit (tmpfs: grow it to 64 MiB)."""
        if self.kind == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.dir)], check=True)
        else:
            self.preexec = None


def _file_size_limit(capacity: int = CAPACITY) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (capacity, capacity))
    return limit


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir()
    if shutil.which("mount") is None:
        return False
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CAPACITY}", f"r1-faults-{uuid.uuid4().hex[:8]}",
                            str(where)], check=False, capture_output=True)
    return probe.returncode == 0


@pytest.fixture(params=["file-size-limit", "tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    where = tmp_path / "disk"
    if request.param == "tmpfs":
        if not _mount_tmpfs(where):
            pytest.skip("cannot mount a tmpfs here (needs root); the file-size-limit variant covers the rest")
        try:
            yield Disk("tmpfs", where, None, ("No space left on device",))
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
    else:
        where.mkdir()
        yield Disk("file-size-limit", where, _file_size_limit(), ("File too large",))


def _assert_clean_failure(proc: subprocess.CompletedProcess, disk: Disk, what: str) -> str:
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.startswith(f"Error: cannot write {what}"), stderr
    assert any(e in stderr for e in disk.errors), stderr
    assert "Hint: free some space" in stderr, stderr
    return stderr


def _rollouts(n: int) -> list[dict]:
    return [{"id": f"q{i // 4}", "sample": i % 4, "prompt": f"What is {i // 4} + 1?", "answer": str(i // 4 + 1),
             "task": "math", "completion": f"<think>Adding one to {i // 4}.</think><answer>{i // 4 + 1 + i % 2}</answer>"}
            for i in range(n)]


def test_data_to_a_file(disk: Disk) -> None:
    out = disk.dir / "prompts.jsonl"
    proc = disk.run("data", "arithmetic", "-n", 5000, "-o", out)
    _assert_clean_failure(proc, disk, f"{out}.part")
    assert list(disk.dir.iterdir()) == []  # without --resume nothing is left


def test_data_to_stdout_redirected(disk: Disk, tmp_path: Path) -> None:
    """`r1 data … > FILE` on a full disk: FILE ends with the last complete record."""
    out = disk.dir / "prompts.jsonl"
    proc = disk.run("data", "arithmetic", "-n", 5000, stdout=out)
    _assert_clean_failure(proc, disk, "to stdout")
    lines = out.read_bytes().splitlines(keepends=True)
    assert 0 < whole_lines(out) < 5000
    full = run_r1("data", "arithmetic", "-n", 5000, "-q")
    assert full.returncode == 0
    assert b"".join(lines) == full.stdout.encode()[:out.stat().st_size]  # a prefix of the whole output


def test_score_resumes_once_there_is_room(disk: Disk, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rollouts.jsonl", _rollouts(2000))
    out = disk.dir / "scored.jsonl"
    args = ["score", source, "-r", "accuracy", "-r", "format", "--workers", 2, "-o", out, "--resume"]
    proc = disk.run(*args)
    stderr = _assert_clean_failure(proc, disk, f"{out}.part")
    assert "rerun with --resume" in stderr
    part = Path(f"{out}.part")
    assert not out.exists() and 0 < whole_lines(part) < 2000
    disk.make_room()
    proc = disk.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    reference = run_r1("score", source, "-r", "accuracy", "-r", "format", "--workers", 2, "-q")
    got = read_jsonl(out)
    assert set(keys(got).values()) == {1}
    assert multiset(got) == multiset(parse_jsonl(reference.stdout))


def test_score_to_stdout_redirected(disk: Disk, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rollouts.jsonl", _rollouts(2000))
    out = disk.dir / "scored.jsonl"
    proc = disk.run("score", source, "-r", "format", "--workers", 2, stdout=out)
    _assert_clean_failure(proc, disk, "to stdout")
    assert 0 < whole_lines(out) < 2000


def test_reject_sample(disk: Disk, tmp_path: Path) -> None:
    rows = [{**r, "rewards": {"accuracy": 1.0}, "reward": 1.0} for r in _rollouts(2000)]
    source = write_jsonl(tmp_path / "scored.jsonl", rows)
    out = disk.dir / "selected.jsonl"
    proc = disk.run("reject-sample", source, "-o", out)
    stderr = _assert_clean_failure(proc, disk, f"{out}.part")
    assert "--resume" not in stderr  # reject-sample has none: the hint says to run it again
    assert list(disk.dir.iterdir()) == []


def test_eval_results_folder(disk: Disk, tmp_path: Path) -> None:
    rows = [{**r, "rewards": {"accuracy": 1.0, "format": 1.0}, "reward": 2.0} for r in _rollouts(2000)]
    source = write_jsonl(tmp_path / "scored.jsonl", rows)
    out = disk.dir / "evals"
    proc = disk.run("eval", "--from", source, "-o", out, "-q")
    _assert_clean_failure(proc, disk, str(out / "scored.samples.jsonl.part"))
    assert not out.exists() or list(out.iterdir()) == []


def test_rollout_resumes_once_there_is_room(tiny: str, prompts, tmp_path: Path) -> None:
    """The file size limit only (a model load per run): --resume after a full disk, every (id, sample) once."""
    disk = Disk("file-size-limit", tmp_path, _file_size_limit(4000), ("File too large",))  # ~8 of 24 records
    source = prompts(12)
    out = tmp_path / "rollouts.jsonl"
    args = ["rollout", source, "-m", tiny, "-n", 2, "--max-new-tokens", 8, "--engine-batch-size", 4, "-o", out, "--resume"]
    proc = disk.run(*args)
    _assert_clean_failure(proc, disk, f"{out}.part")
    part = Path(f"{out}.part")
    assert 0 < whole_lines(part) < 24
    disk.make_room()
    proc = disk.run(*args)
    assert proc.returncode == 0, proc.stderr.decode()
    got = read_jsonl(out)
    ids = [r["id"] for r in read_jsonl(source)]
    assert keys(got) == {(i, s): 1 for i in ids for s in range(2)}
