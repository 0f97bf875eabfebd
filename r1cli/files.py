"""Files written whole or not at all, and one writer at a time.

`write_atomic` writes a temporary file next to the target, fsyncs it and renames it over the
target: a reader (or a crash) sees the old file or the new one, never half of one. `exclusive`
holds an exclusive `flock` on a lock file while a command writes an output; a second writer is
refused at once with an OutputError naming the first one's pid.

    write_json(Path("out/results.json"), {"accuracy": 0.5})
    with exclusive(Path("out.jsonl.lock"), what="out.jsonl"):
        ...
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from r1cli.errors import OutputError


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` through a temporary file renamed over it."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # a name of its own per writer: two processes writing the same file never share a temporary
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="free some space (or raise the file size limit), then run the command again"
                          if full else None) from None
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """`data` as indented JSON (UTF-8 kept as is), written atomically."""
    return write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def lock_file(output: str | os.PathLike[str]) -> Path:
    """The lock file of an output: FILE.lock beside it."""
    return Path(str(output) + ".lock")


@contextmanager
def exclusive(lock: Path, *, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock` (created, holding this pid; removed on the way out).

    Another holder is an OutputError at once: `what` is being written by another r1 process.
    The kernel drops the lock of a process that dies, so a lock file left by a kill -9 is
    simply taken over. Where there is no `flock` (Windows), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    created = [p for p in (lock.parent, *lock.parent.parents) if not p.exists()]
    fd = _acquire(lock, what, fcntl)
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)  # while still held: no one can lock this file meanwhile and keep it
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)  # forked workers share the descriptor: release it for them too
        os.close(fd)
        for folder in created:  # made for the lock only (the command failed before writing): leave none behind
            try:
                folder.rmdir()
            except OSError:
                break


def _acquire(lock: Path, what: str, fcntl: Any) -> int:
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write {what}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _holder(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "pid unknown"
            raise OutputError(f"{what} is being written by another r1 process ({who})",
                              hint="wait for it to finish (or stop it), then run this again; "
                                   "two writers would mix their records") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file between our open and our lock: lock the new one
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
