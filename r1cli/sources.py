"""Record sources: stdin ('-'), a .jsonl/.json/.parquet file, a FIFO, or a HF dataset name.

Reading yields `(where, record)` pairs so that every error can name `file:line`:

    for where, record in iter_records("rollouts.jsonl"):
        ...
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from r1cli.errors import BadInput
from r1cli.jsonl import _finite_float, _refuse_constant, decode_line, lines, max_line_bytes

Located = tuple[str, dict[str, Any]]


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
            problem = BadInput(f"{where}: expected a JSON object, got {json_type(record)}",
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


def json_type(value: Any) -> str:
    """How a JSON value is named in messages: "an array", "a string", "null"…"""
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
        raise BadInput(f"{path}: expected an array of objects, got {json_type(data)}")
    for i, record in enumerate(data):
        where = f"{path}:item {i}"
        if not isinstance(record, dict):
            raise BadInput(f"{where}: expected a JSON object, got {json_type(record)}")
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
