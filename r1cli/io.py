"""Record streams: read JSONL/JSON/parquet/HF datasets, write JSONL atomically, resume.

Reading yields `(where, record)` pairs so every error can name `file:line`. Writing to a file
goes through `FILE.part`, renamed to FILE when the command succeeds; `--resume` continues a
`.part` file (or a finished FILE) after dropping its incomplete tail.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from r1cli.errors import BadInput, OutputError
from r1cli.jsonl import (  # noqa: F401  dumps, decode_line: part of this module's API
    _finite_float, _refuse_constant, decode_line, dumps, lines, max_line_bytes,
)
from r1cli.templates import gsm8k_answer, last_boxed

Located = tuple[str, dict[str, Any]]

EXTRACTORS = ("gsm8k", "boxed")


# ---- reading --------------------------------------------------------------------------


def iter_records(source: str = "-", *, split: str | None = None, skip_invalid: bool = False,
                 skipped: list[str] | None = None) -> Iterator[Located]:
    """Yield `(where, record)` from stdin ('-'), a .jsonl/.json/.parquet file, or a HF dataset name.

    With `skip_invalid`, malformed lines are left out and their locations appended to `skipped`
    instead of raising.
    """
    if source == "-":
        yield from _iter_jsonl(sys.stdin.buffer, "<stdin>", skip_invalid, skipped)
        return
    path = Path(source)
    if path.is_dir():
        raise BadInput(f"{source}: is a folder, not a records file",
                       hint="pass a .jsonl, .json or .parquet file, '-' for stdin, or a HF dataset name")
    if _is_stream(path):  # a FIFO, <(cmd) (/dev/fd/N), a character device: read as JSONL, as it comes
        try:
            fp = open(path, "rb")
        except OSError as exc:
            raise BadInput(f"{source}: cannot read ({exc.strerror or exc})") from None
        with fp:
            yield from _iter_jsonl(fp, source, skip_invalid, skipped)
        return
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            yield from _iter_parquet(path)
        elif suffix == ".json":
            yield from _iter_json(path)
        else:
            with open(path, "rb") as fp:
                yield from _iter_jsonl(fp, source, skip_invalid, skipped)
        return
    if path.suffix.lower() not in (".jsonl", ".json", ".parquet") and _looks_like_hub_id(source):
        name, _, config = source.partition(":")
        yield from _iter_dataset(name, config or None, split or "train")
        return
    raise BadInput(f"{source}: no such file", hint="check the path, or use '-' to read stdin")


def read_records(source: str = "-", **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Records only, without their locations."""
    for _, record in iter_records(source, **kwargs):
        yield record


def _looks_like_hub_id(source: str) -> bool:
    """'gsm8k', 'openai/gsm8k' or 'openai/gsm8k:main' (a config after the colon)."""
    parts = source.partition(":")[0].split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) and " " not in source


def _is_stream(path: Path) -> bool:
    """True for what exists and is read as a stream: a FIFO, a socket, a character device."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _iter_jsonl(fp: IO[bytes], name: str, skip_invalid: bool, skipped: list[str] | None) -> Iterator[Located]:
    limit = max_line_bytes()
    for lineno, raw in enumerate(lines(fp, limit), start=1):
        where = f"{name}:{lineno}"
        if raw is None:
            problem = BadInput(f"{where}: line longer than {limit:,} bytes",
                               hint="records are read whole: split this one, or raise R1_MAX_LINE_BYTES"
                               + ("" if skip_invalid else ", or pass --skip-invalid"))
            if _skip(where, skip_invalid, skipped):
                continue
            raise problem
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = BadInput(f"{where}: not UTF-8 (byte {exc.start + 1} of the line)",
                               hint="re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8")
            if _skip(where, skip_invalid, skipped):
                continue
            raise problem from None
        if not line.strip():
            continue
        try:
            record = decode_line(line, where, skip_hint=not skip_invalid)
        except BadInput:
            if _skip(where, skip_invalid, skipped):
                continue
            raise
        if not isinstance(record, dict):
            problem = BadInput(f"{where}: expected a JSON object, got {_json_type(record)}",
                               hint='each line must be an object such as {"prompt": "..."}')
            if _skip(where, skip_invalid, skipped):
                continue
            raise problem
        yield where, record


def _skip(where: str, skip_invalid: bool, skipped: list[str] | None) -> bool:
    """True when a bad line is to be skipped (and counted) rather than raised."""
    if skip_invalid and skipped is not None:
        skipped.append(where)
    return skip_invalid


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _iter_json(path: Path) -> Iterator[Located]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8", hint="re-encode the file as UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})",
                       hint="a .json file must hold one array of objects (use .jsonl for one object per line)") from None
    except (ValueError, RecursionError):  # NaN, a 5,000-digit number, nesting too deep: named as for JSONL
        decode_line(text, str(path))
        raise
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected an array of objects, got {_json_type(data)}")
    for i, record in enumerate(data):
        where = f"{path}:item {i}"
        if not isinstance(record, dict):
            raise BadInput(f"{where}: expected a JSON object, got {_json_type(record)}")
        yield where, record


def _iter_parquet(path: Path) -> Iterator[Located]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise BadInput(f"{path}: not a readable parquet file ({exc})") from None
    row = 0
    for batch in table.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            yield f"{path}:row {row}", record
            row += 1


def _iter_dataset(name: str, config: str | None, split: str) -> Iterator[Located]:
    """Stream a HF dataset's rows; a hub that cannot serve it fails at once, with a local-copy hint.

    Without the probe, `datasets` spends 8–30 s in "Retrying in 8s" (and ~5 s importing) before
    its own error; the probe answers in milliseconds offline, or after its 10 s timeout. A
    dataset already in the local hub cache skips the probe: `datasets` loads it from there.
    """
    label = f"dataset '{name}'" + (f" config '{config}'" if config else "")
    args = f"'{name}'" + (f", '{config}'" if config else "")
    copy = name.rsplit("/", 1)[-1] + ".jsonl"
    hint = (f"where the hub is reachable, save a local copy once: python -c \"import datasets; "
            f"datasets.load_dataset({args}, split='{split}').to_json('{copy}')\"; then read {copy} instead "
            f"(check the name and --split if the hub is reachable)")
    if not _in_hub_cache(name):
        from r1cli.evaluation import check_hub

        check_hub(name, what=label, hint=hint)
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as exc:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError…)
        raise BadInput(f"could not load {label} (split '{split}'): {type(exc).__name__}: {exc}",
                       hint=hint) from None
    for i, record in enumerate(ds):
        yield f"{name}[{split}]:row {i}", dict(record)


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}").is_dir()


# ---- prompt records ---------------------------------------------------------------------


def prompt_id(prompt: Any) -> str:
    """A stable id derived from the prompt: 'p-' + 12 hex digits of its SHA-1."""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, sort_keys=True)
    return "p-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def extract_answer(text: str, how: str) -> str | None:
    r"""Pull a final answer out of a solution: 'gsm8k' ('#### 42') or 'boxed' (last \boxed{}).

    >>> extract_answer("3 + 4 = 7\n#### 7", "gsm8k"), extract_answer(r"so \boxed{\frac{1}{2}}.", "boxed")
    ('7', '\\frac{1}{2}')
    """
    if how == "gsm8k":
        return gsm8k_answer(text)
    if how == "boxed":
        return last_boxed(text)
    raise BadInput(f"unknown answer extraction '{how}'", hint=f"choose from: {', '.join(EXTRACTORS)}")


def prepare_prompts(located: Iterable[Located], *, prompt_field: str | None = None, answer_field: str | None = None,
                    extract: str | None = None) -> Iterator[Located]:
    """Validate and normalise prompt records: map fields, extract answers, add a stable `id`.

    Field mapping is explicit (`prompt_field`, `answer_field`): a record without `prompt` is an
    error that names the fields the record does have. Duplicate ids are an error (samples are
    grouped by id); a prompt that repeats without an id gets '-2', '-3'… appended.
    """
    if extract is not None and extract not in EXTRACTORS:
        raise BadInput(f"unknown answer extraction '{extract}'", hint=f"choose from: {', '.join(EXTRACTORS)}")
    pfield = prompt_field or "prompt"
    afield = answer_field or "answer"
    seen: dict[str, str] = {}
    derived: dict[str, int] = {}
    for where, record in located:
        if pfield not in record:
            fields = ", ".join(sorted(record)) or "none"
            hint = (f"the record's fields are: {fields}; map one with --prompt-field"
                    if prompt_field is None else f"the record's fields are: {fields}")
            raise BadInput(f"{where}: no '{pfield}' field", hint=hint)
        prompt = record[pfield]
        if not _valid_prompt(prompt):
            raise BadInput(f"{where}: '{pfield}' must be a non-empty string or a list of "
                           '{"role": ..., "content": ...} messages',
                           hint=f"got {_json_type(prompt)}")
        out = dict(record)
        out["prompt"] = prompt
        if answer_field is not None or extract is not None:
            if afield not in record:
                raise BadInput(f"{where}: no '{afield}' field", hint=f"the record's fields are: {', '.join(sorted(record))}")
            value = record[afield]
            if extract is not None:
                if not isinstance(value, str):
                    raise BadInput(f"{where}: '{afield}' must be text to extract an answer from")
                answer = extract_answer(value, extract)
                if answer is None:
                    shape = "'#### <answer>'" if extract == "gsm8k" else "'\\boxed{...}'"
                    raise BadInput(f"{where}: no {shape} in '{afield}'",
                                   hint="check --extract-answer matches the data set, or fix the record")
                value = answer
            out["answer"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if "id" in out and out["id"] is not None:
            rid = str(out["id"])
        else:
            base = prompt_id(prompt)
            derived[base] = derived.get(base, 0) + 1
            rid = base if derived[base] == 1 else f"{base}-{derived[base]}"
        if rid in seen:
            raise BadInput(f"{where}: duplicate id '{rid}' (first at {seen[rid]})",
                           hint="ids must be unique: samples are grouped by id")
        seen[rid] = where
        out["id"] = rid
        yield where, out


def _valid_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return bool(prompt.strip())
    return (isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt))


def load_prompts(source: str = "-", *, split: str | None = None, prompt_field: str | None = None,
                 answer_field: str | None = None, extract_answer: str | None = None) -> Iterator[dict[str, Any]]:
    """Prompt records from any source, validated, with stable ids."""
    located = iter_records(source, split=split)
    for _, record in prepare_prompts(located, prompt_field=prompt_field, answer_field=answer_field,
                                     extract=extract_answer):
        yield record


# ---- writing ----------------------------------------------------------------------------


class Sink:
    """Where a command writes its records: stdout, or FILE.part renamed to FILE at the end."""

    def __init__(self, fp: IO[str], path: str | None, *, resume: bool) -> None:
        self._fp = fp
        self.path = path  # the .part file; None for stdout
        self._resume = resume
        # stdout is written through its descriptor, in whole records (below); None: a stream without one
        self._fd = None if path else _descriptor(fp)
        # byte offset after the last complete write; for stdout only when it is a regular file
        self._good = fp.tell() if path else _file_offset(self._fd)
        self.written = 0

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
        self.written += text.count("\n")

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

    # -- resume ------------------------------------------------------------------------

    def _existing(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(end offset, record) for every complete line already in the file."""
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
                yield offset, record

    def _cut(self, offset: int) -> None:
        self._fp.flush()
        self._fp.truncate(offset)
        self._fp.seek(offset)
        self._good = offset

    def resume_records(self) -> int:
        """Keep the complete lines already written; return how many there are."""
        if self.path is None or not self._resume:
            return 0
        count, end = 0, 0
        for end, _ in self._existing():
            count += 1
        self._cut(end)
        return count

    def resume_groups(self, size: int, key: str = "id") -> set[str]:
        """Keep the complete groups already written (records sharing `key`, `size` of them with
        samples 0..size-1); drop an incomplete trailing group; return the complete keys."""
        if self.path is None or not self._resume:
            return set()
        done: set[str] = set()
        end = 0
        current: str | None = None
        samples: set[Any] = set()
        for offset, record in self._existing():
            k = str(record.get(key))
            if k != current:
                if k in done:
                    raise OutputError(f"{self.path}: group '{k}' appears twice; this file was not written by one run",
                                      hint="start again without --resume, or with another -o")
                current, samples = k, set()
            samples.add(record.get("sample"))
            if len(samples) == size and samples == set(range(size)):
                done.add(k)
                end = offset
        self._cut(end)
        return done


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


@contextmanager
def open_output(path: str = "-", *, resume: bool = False) -> Iterator[Sink]:
    """Open where records go. A file is written as FILE.part and renamed to FILE on success.

    On an error the partial file is removed, unless `resume` is set or the run was interrupted
    (Ctrl-C, kill): then `--resume` continues it.
    """
    if path == "-":
        yield Sink(sys.stdout, None, resume=False)
        return
    final = Path(path)
    part = Path(path + ".part")
    if final.is_dir():
        raise OutputError(f"{path}: is a folder", hint="-o takes a file path")
    if resume and final.exists() and not part.exists():
        os.replace(final, part)  # a finished file: continue it (new prompts may have been added)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fp = open(part, "a" if resume else "w", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    sink = Sink(fp, str(part), resume=resume)
    try:
        yield sink
    except KeyboardInterrupt:
        _close_quietly(fp)
        raise
    except BaseException:
        _close_quietly(fp)
        if not resume:
            part.unlink(missing_ok=True)
        raise
    try:
        fp.flush()
        os.fsync(fp.fileno())
        fp.close()
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="free some space, then rerun with --resume") from None
    os.replace(part, final)


def _close_quietly(fp: IO[str]) -> None:
    try:
        fp.close()
    except OSError:
        pass
