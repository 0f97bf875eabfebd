"""Where a command writes its records: stdout, or a file written whole, one writer at a time, resumable.

A file output `FILE` is written as `FILE.part` and renamed to FILE when the command succeeds;
while it is written, `FILE.lock` is locked (`r1cli.files.exclusive`), so a second writer is
refused before it touches anything. With a `Spec` the output carries its manifest
(`FILE.r1.json`, see `r1cli.manifest`). `--resume` continues `FILE.part` (or a finished FILE)
after dropping its incomplete tail, once its manifest shows the same command and settings:

    with open_output("out.jsonl", resume=True, spec=Spec("score", settings)) as sink:
        done = sink.resume_records()
        for where, record in sink.track_input(iter_records("in.jsonl"), source="in.jsonl"):
            ...
            sink.write(record)
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from r1cli import manifest
from r1cli.errors import BadInput, OutputError, ResumeMismatch
from r1cli.files import exclusive, lock_file
from r1cli.jsonl import decode_line, dumps, lines, max_line_bytes
from r1cli.manifest import Fingerprint, InputCheck, Spec

# Seconds between manifest updates while records are written: what a resume after a kill -9
# checks of the input is the fingerprint as of the last update (~1 ms to write one).
CHECKPOINT_S = 10.0


class Sink:
    """Where a command writes its records: stdout, or FILE.part renamed to FILE at the end."""

    def __init__(self, fp: IO[str], path: str | None, *, resume: bool, spec: Spec | None = None,
                 previous: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        self._fp = fp
        self.path = path  # the .part file; None for stdout
        self.name = name or path or "-"  # the output as the user named it
        self._resume = resume
        # stdout is written through its descriptor, in whole records (below); None: a stream without one
        self._fd = None if path else _descriptor(fp)
        # byte offset after the last complete write; for stdout only when it is a regular file
        self._good = fp.tell() if path else _file_offset(self._fd)
        self.written = 0
        self.kept = 0  # complete records kept from before (--resume)
        self.spec = spec
        self.previous = dict(previous) if previous else None  # the manifest on record (--resume)
        self.summary: Mapping[str, Any] | None = None  # the stage's counts, recorded in the manifest
        self.input: InputCheck | None = None
        self.values: dict[str, set[Any]] = {}  # resume_groups(note=…): values seen in the kept records
        # the records in the file; unknown (None) on a resume until resume_records/resume_groups
        self._out: Fingerprint | None = None if resume else Fingerprint()
        self._start = (self._good or 0, self._out.copy() if self._out else None)
        self._saved = 0.0

    # -- writing -----------------------------------------------------------------------

    def write(self, record: Mapping[str, Any]) -> None:
        self._emit(dumps(record))

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(dumps(r) for r in records)
        if text:
            self._emit(text)

    def _emit(self, text: str) -> None:
        if self.path is None:
            self._emit_stdout(text)
            return
        try:
            self._fp.write(text)
            self._fp.flush()
        except OSError as exc:
            self._rollback()
            if exc.errno in _FULL:
                again = "rerun with --resume to continue it" if self._resume else "run the command again"
                raise OutputError(f"cannot write {self.path}: {exc.strerror}",
                                  hint=f"free some space (or raise the file size limit), then {again}") from None
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._good = self._fp.tell()
        first = self.written == 0
        self.written += text.count("\n")
        if self._out is not None:
            self._out.add_text(text)
        if self.spec is not None and (first or time.monotonic() - self._saved >= CHECKPOINT_S):
            self.save()

    def _emit_stdout(self, text: str) -> None:
        """Write to stdout's descriptor until every byte is out, or fail whole.

        sys.stdout would not do: under PYTHONUNBUFFERED its text layer drops the rest of a short
        write without an error, and otherwise it keeps the rest for an exit-time flush that
        prints 'Exception ignored'; either way a full disk would end the file mid-record.
        """
        if self._fd is None:
            self._fp.write(text)
            self._fp.flush()
            self.written += text.count("\n")
            return
        data = memoryview(text.encode("utf-8"))
        try:
            self._fp.flush()  # whatever else went to stdout first stays first
            while data:
                data = data[os.write(self._fd, data):]
        except BrokenPipeError:
            raise  # the reader left (`| head -1`): the CLI exits quietly
        except OSError as exc:
            if self._good is not None:  # `> out.jsonl` on a full disk: cut back to the last complete record
                try:
                    os.ftruncate(self._fd, self._good)
                except OSError:
                    pass
            hint = "free some space (or raise the file size limit), then run the command again" if exc.errno in _FULL else None
            raise OutputError(f"cannot write to stdout: {exc.strerror or exc}", hint=hint) from None
        if self._good is not None:
            self._good += len(data.obj)  # type: ignore[arg-type]
        self.written += text.count("\n")

    def _rollback(self) -> None:
        """Cut the file back to its last complete write, so no partial line stays behind."""
        try:
            self._fp.close()
        except OSError:
            pass
        try:
            os.truncate(self.path, self._good)  # type: ignore[arg-type]
        except OSError:
            pass

    # -- the manifest --------------------------------------------------------------------

    def track_input(self, located: Iterable[tuple[str, dict[str, Any]]], *,
                    source: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """`located`, fingerprinted for the manifest; on a resume, checked against the input on record."""
        expected = (self.previous or {}).get("input") if self._resume else None
        self.input = InputCheck(source, expected, what=self.name)
        return self.input.read(located)

    def save(self, *, complete: bool = False, to: str | Path | None = None) -> None:
        """Write the manifest of this output (the .part's, or `to`'s)."""
        if self.spec is None or self.path is None:
            return
        if self.input is not None:
            given = self.input.state()
        else:
            given = (self.previous or {}).get("input")
        output = self._out.state() if self._out is not None else (self.previous or {}).get("output")
        manifest.write(to or self.path, self.spec, input=given, output=output, complete=complete,
                       summary=self.summary)
        self._saved = time.monotonic()

    def _save_quietly(self) -> None:
        try:
            self.save()
        except OutputError:  # already failing (a full disk): the manifest as of the last update stands
            pass

    def _restart(self) -> None:
        """Cut the file back to where this run began (after what a resume kept): nothing of this run stays."""
        offset, out = self._start
        try:
            self._fp.flush()
            if os.fstat(self._fp.fileno()).st_size != offset:
                self._fp.truncate(offset)
        except (OSError, ValueError):
            pass
        self._out = out.copy() if out is not None else None
        self.written = 0

    # -- resume ------------------------------------------------------------------------

    def _existing(self) -> Iterator[tuple[int, int, bytes, dict[str, Any]]]:
        """(line number, end offset, raw line, record) for every complete line already in the file."""
        assert self.path is not None
        offset = 0
        with open(self.path, "rb") as fp:
            for lineno, raw in enumerate(lines(fp, max_line_bytes()), start=1):
                if raw is None or not raw.endswith(b"\n"):
                    break  # a partial last line (or one this writer could not have written): dropped
                try:
                    record = decode_line(raw.decode("utf-8"), f"{self.path}:{lineno}")
                except (BadInput, UnicodeDecodeError):
                    # a torn write, or a line no r1 writes (NaN, a 5,000-digit number): everything
                    # from here is redone, so no record is lost or written twice
                    break
                if not isinstance(record, dict):
                    break
                offset += len(raw)
                yield lineno, offset, raw, record

    def _cut(self, offset: int, out: Fingerprint, kept: int) -> None:
        self._fp.flush()
        if os.fstat(self._fp.fileno()).st_size != offset:  # a file with nothing to drop keeps its mtime
            self._fp.truncate(offset)
        self._fp.seek(offset)
        self._good = offset
        self._out, self.kept = out, kept
        self._start = (offset, out.copy())

    def kept_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """`(where, record)` of the records a resume kept, in file order."""
        if self.path is None or not self.kept:
            return
        for lineno, _, _, record in self._existing():
            if lineno > self.kept:
                return
            yield f"{self.name}:{lineno}", record

    def resume_records(self) -> int:
        """Keep the complete lines already written; return how many there are."""
        if self.path is None or not self._resume:
            return 0
        fp, count, end = Fingerprint(), 0, 0
        for _, end, raw, _ in self._existing():
            fp.add_line(raw)
            count += 1
        self._cut(end, fp, count)
        return count

    def resume_groups(self, size: int, key: str = "id", *, note: Iterable[str] = ()) -> set[str]:
        """Keep the complete groups already written (records sharing `key`, `size` of them with
        samples 0..size-1); drop an incomplete trailing group; return the complete keys.

        A group of other samples than 0..size-1 that is not the trailing one (the file was made
        with another number of samples per prompt) is refused, never cut: resume deletes no
        sample. The values of the fields in `note` are collected in `values` (e.g. `model`).
        """
        if self.path is None or not self._resume:
            return set()
        note = tuple(note)
        values: dict[str, set[Any]] = {name: set() for name in note}
        done: set[str] = set()
        fp, at_end, end, count, kept = Fingerprint(), Fingerprint(), 0, 0, 0
        current: str | None = None
        samples: set[Any] = set()
        first = 0
        whole = set(range(size))
        for lineno, offset, raw, record in self._existing():
            k = str(record.get(key))
            if k != current:
                if current is not None and samples != whole:
                    raise self._other_size(first, current, samples, size)
                if k in done:
                    raise OutputError(f"{self.path}: group '{k}' appears twice; this file was not written by one run",
                                      hint="start again without --resume, or with another -o")
                current, samples, first = k, set(), lineno
            samples.add(record.get("sample"))
            fp.add_line(raw)
            count += 1
            for name in note:
                value = record.get(name)
                values[name].add(value if isinstance(value, (str, int, float, bool, type(None))) else repr(value))
            if samples == whole:
                done.add(k)
                end, at_end, kept = offset, fp.copy(), count
        if current is not None and not samples <= whole:
            raise self._other_size(first, current, samples, size)
        self._cut(end, at_end, kept)
        self.values = values
        return done

    def _other_size(self, line: int, key: str, samples: set[Any], size: int) -> OutputError:
        shown = ", ".join(str(s) for s in sorted(samples, key=str)[:8]) + (", …" if len(samples) > 8 else "")
        return ResumeMismatch(f"{self.path}:{line}: prompt '{key}' has samples {shown}, not 0–{size - 1}: "
                              f"this file was made with another number of samples per prompt",
                              hint="resume with the -n it was made with, or use another -o (a resume never "
                                   "deletes samples)")


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file size limit


def _descriptor(fp: IO[str]) -> int | None:
    try:
        return fp.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation: a test runner's stream
        return None


def _file_offset(fd: int | None) -> int | None:
    """Where the next write to a regular file lands (stdout redirected with > or >>); None otherwise."""
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None  # a pipe or a terminal: nothing to cut back
        if _appending(fd):
            return st.st_size  # the first write lands at the end, wherever the offset stands now
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None


def _appending(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no O_APPEND flag to read
        return False
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


def on_record(path: str, part: Path, final: Path) -> Path | None:
    """The file whose manifest a resume of `path` compares: FILE.part, else a finished FILE; None if neither."""
    return part if part.exists() else final if final.exists() else None


@contextmanager
def open_output(path: str = "-", *, resume: bool = False, spec: Spec | None = None,
                warn: Callable[[str], None] | None = None) -> Iterator[Sink]:
    """Open where records go. A file is written as FILE.part and renamed to FILE on success.

    On an error the partial file is removed, unless `resume` is set or the run was interrupted
    (Ctrl-C, kill): then `--resume` continues it. With `spec`, the file carries its manifest and
    a resume is refused (ResumeMismatch, nothing written) when the manifest on record shows
    another command or settings; a file without one gets `warn(…)` and is continued.
    """
    if path == "-":
        yield Sink(sys.stdout, None, resume=False)
        return
    final = Path(path)
    part = Path(path + ".part")
    if final.is_dir():
        raise OutputError(f"{path}: is a folder", hint="-o takes a file path")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    with exclusive(lock_file(final), what=path):
        previous = None
        current = on_record(path, part, final) if resume and spec is not None else None
        if current is not None:
            previous = manifest.read(current)
            if previous is None:
                if warn is not None:
                    warn(f"{current} has no manifest ({manifest.sidecar(current).name}): it was written by an "
                         "older r1, so the settings it was made with cannot be checked; resuming it with these")
            else:
                manifest.check(previous, spec, what=path)  # type: ignore[arg-type]
        reopened = resume and final.exists() and not part.exists()
        if reopened:  # a finished file: continue it (new prompts may have been added)
            _rename(final, part)
        try:
            fp = open(part, "a" if resume else "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        sink = Sink(fp, str(part), resume=resume, spec=spec, previous=previous, name=path)
        try:
            if spec is not None and (current is None or not resume):
                sink.save()  # a new .part has its manifest beside it from the start
            yield sink
        except KeyboardInterrupt:
            sink._save_quietly()
            _close_quietly(fp)
            raise
        except ResumeMismatch:
            saved = sink._saved
            sink._restart()  # refused: what this run wrote goes, what was there stays
            if saved:
                sink._save_quietly()  # the manifest as it was before this run
            _close_quietly(fp)
            if reopened:
                _rename(part, final)  # finished it was, finished it stays
            raise
        except BaseException:
            _close_quietly(fp)
            if not resume:
                part.unlink(missing_ok=True)
                manifest.sidecar(part).unlink(missing_ok=True)
            else:
                sink._save_quietly()
            raise
        try:
            fp.flush()
            os.fsync(fp.fileno())
            fp.close()
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                              hint="free some space, then rerun with --resume") from None
        if spec is not None:
            sink.save(complete=True, to=final)  # FILE.r1.json first: FILE never stands beside another run's
        else:
            manifest.sidecar(final).unlink(missing_ok=True)  # another command's, now stale
        os.replace(part, final)
        manifest.sidecar(part).unlink(missing_ok=True)


def _rename(src: Path, dst: Path) -> None:
    """Rename an output and its manifest."""
    os.replace(src, dst)
    if manifest.sidecar(src).exists():
        os.replace(manifest.sidecar(src), manifest.sidecar(dst))


def _close_quietly(fp: IO[str]) -> None:
    try:
        fp.close()
    except OSError:
        pass
