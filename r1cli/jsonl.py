r"""JSON Lines at the byte level: one bounded line in, one standard JSON value out, and back.

`decode_line` refuses what is not standard JSON or cannot be held (NaN, Infinity, a number of
over 4,300 digits, nesting too deep), naming the line; `lines` reads lines no longer than
`max_line_bytes`; `dumps` writes standard JSON with Unicode line breaks escaped.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from r1cli.errors import BadInput, OutputError

# Longest line read, in bytes (a line past it is an error naming it, or skipped): a record is held
# whole in memory, ~10× its size once decoded, and an endless line (`r1 score < /dev/zero`) must
# end in an error rather than MemoryError. 64 MiB is ~100× the longest completion of a 128k-token
# context. Override with R1_MAX_LINE_BYTES.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Characters json.dumps leaves as they are that readers splitting on Unicode line breaks (Python's
# str.splitlines, many editors and log viewers) treat as the end of a line.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def max_line_bytes() -> int:
    """The longest line read: R1_MAX_LINE_BYTES, else `MAX_LINE_BYTES`."""
    text = os.environ.get("R1_MAX_LINE_BYTES", "").strip()
    if not text:
        return MAX_LINE_BYTES
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise BadInput(f"R1_MAX_LINE_BYTES={text!r} is not a positive number of bytes",
                       hint="e.g. R1_MAX_LINE_BYTES=134217728 for 128 MiB, or unset it for the default (64 MiB)")
    return value


def lines(fp: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of `fp`, None for one longer than `limit` bytes (read past and dropped in 1 MiB
    pieces: memory stays bounded however long it is, even endless)."""
    while True:
        raw = fp.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        yield None
        while raw and not raw.endswith(b"\n"):
            raw = fp.readline(1 << 20)


class _NotStandard(ValueError):
    """A JSON constant outside the standard: NaN, Infinity, -Infinity."""


def _refuse_constant(name: str) -> Any:
    raise _NotStandard(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: Infinity under another name
        raise _NotStandard(text)
    return value


def decode_line(line: str, where: str, *, skip_hint: bool = False) -> Any:
    """The JSON value of one line; BadInput naming `where` for what is not standard JSON or cannot be
    held: invalid JSON, NaN/Infinity, a number of over 4,300 digits, nesting too deep."""
    more = ", or pass --skip-invalid" if skip_hint else ""
    try:
        # a cut line: 'Unterminated string', not 'control character'
        return json.loads(line.rstrip("\r\n"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotStandard as exc:
        raise BadInput(f"{where}: {exc} is not JSON (JSON has no NaN or Infinity)",
                       hint="write null (or a string) for a missing or infinite number" + more) from None
    except json.JSONDecodeError as exc:
        msg = exc.msg.removesuffix(" at")  # json's 'Unterminated string starting at' + ' at column 5'
        raise BadInput(f"{where}: invalid JSON ({msg} at column {exc.colno})",
                       hint="each line must be one JSON object; fix or remove the line" + more) from None
    except ValueError as exc:  # Python's limit on int digits (sys.get_int_max_str_digits)
        if "digits" not in str(exc):
            raise
        raise BadInput(f"{where}: a number of more than {sys.get_int_max_str_digits():,} digits",
                       hint="write such a number as a string" + more) from None
    except RecursionError:
        raise BadInput(f"{where}: JSON nested too deep to read",
                       hint="a record's arrays and objects may nest a few hundred levels at most" + more) from None


def dumps(record: Mapping[str, Any]) -> str:
    r"""One JSONL line (with the newline): standard JSON, UTF-8 kept as is but for Unicode line breaks.

    U+0085, U+2028 and U+2029 are escaped (readers that split lines on them would cut the record);
    NaN and Infinity, which JSON lacks, are an OutputError naming the key.

    >>> dumps({"t": "a\u2028b\x85c", "é": 1})
    '{"t": "a\\u2028b\\u0085c", "é": 1}\n'
    """
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        if "JSON compliant" not in str(exc):
            raise
        key, value = _non_finite(record)
        raise OutputError(f"cannot write a record whose '{key}' is {value!r}: JSON has no NaN or Infinity",
                          hint="the stage that produced it should write null for an undefined number") from None
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        text = text.translate(_LINE_BREAKS)
    return text + "\n"


def _non_finite(value: Any, path: str = "") -> tuple[str, float | None]:
    """(dotted path, value) of the first NaN/±inf in `value`; ('', None) when there is none."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        items = ()
    for k, v in items:
        here = f"{path}.{k}" if path else str(k)
        if isinstance(v, float) and not math.isfinite(v):
            return here, v
        found = _non_finite(v, here)
        if found[1] is not None:
            return found
    return "", None
