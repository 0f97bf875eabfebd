"""Input that used to crash the reader, as real `r1 score` processes: each case names file:line, or is skipped.

The cases: a JSON integer of over 4,300 digits (ValueError), nesting 100,000 deep (RecursionError),
NaN / Infinity / 1e999 (not JSON), a line past the line-length bound; and files that are streams
(a FIFO, `<(cmd)` as /dev/fd/N, /dev/zero). Without --skip-invalid each is exit 1 with
`Error: FILE:LINE: …` and no traceback, and nothing written; with it, the good records are scored
and the bad lines counted. `--resume` reading a `.part` file holding such a line redoes it from
there instead of crashing. The output never holds NaN, and escapes U+0085/U+2028/U+2029.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from faultkit import R1, ROOT, r1_env, run_r1

GOOD = {"id": "g", "completion": "<think>a</think><answer>4</answer>", "answer": "4"}
LIMIT = 1 << 20  # R1_MAX_LINE_BYTES in these tests: a long line without writing 64 MiB

BAD_LINES = {
    "huge-int": ('{"completion": "x", "n": ' + "9" * 5000 + "}", "a number of more than 4,300 digits"),
    "deep": ('{"completion": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deep to read"),
    "deep-objects": ('{"completion": "x", "a": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}",
                     "JSON nested too deep to read"),
    "nan": ('{"completion": "x", "v": NaN}', "NaN is not JSON (JSON has no NaN or Infinity)"),
    "infinity": ('{"completion": "x", "v": [1, -Infinity]}', "-Infinity is not JSON"),
    "overflow": ('{"completion": "x", "v": 1e999}', "1e999 is not JSON"),
    "too-long": ('{"completion": "' + "x" * (2 * LIMIT) + '"}', f"line longer than {LIMIT:,} bytes"),
}


def score(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = r1_env(R1_MAX_LINE_BYTES=str(LIMIT))
    return subprocess.run([*R1, "score", *args, "-r", "format", "--workers", "0"], input=stdin, capture_output=True,
                          timeout=timeout, cwd=ROOT, env=env, check=False)


def lines_file(path: Path, bad: str) -> Path:
    path.write_text(json.dumps(GOOD) + "\n" + bad + "\n" + json.dumps({**GOOD, "id": "h"}) + "\n")
    return path


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_the_error_names_the_line(kind: str, tmp_path: Path) -> None:
    bad, message = BAD_LINES[kind]
    source = lines_file(tmp_path / "in.jsonl", bad)
    out = tmp_path / "out.jsonl"
    result = score(str(source), "-o", str(out), "-q")
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.startswith(f"Error: {source}:2: {message}"), stderr
    assert "Traceback" not in stderr
    assert not out.exists() and not Path(f"{out}.part").exists()


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_skip_invalid_skips_and_counts(kind: str, tmp_path: Path) -> None:
    source = lines_file(tmp_path / "in.jsonl", BAD_LINES[kind][0])
    result = score(str(source), "--skip-invalid")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["g", "h"]
    assert "1 invalid lines skipped" in result.stderr.decode()


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_resume_redoes_a_part_file_from_a_line_it_cannot_read(kind: str, tmp_path: Path) -> None:
    """A .part holding such a line (an older r1 wrote NaN through): no crash, nothing lost or doubled."""
    source = tmp_path / "in.jsonl"
    records = [{**GOOD, "id": f"r{i}"} for i in range(4)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out.jsonl"
    scored = [json.dumps({**r, "rewards": {"format": 1.0}, "reward": 1.0, "pred": "4"}) for r in records[:1]]
    Path(f"{out}.part").write_text(scored[0] + "\n" + BAD_LINES[kind][0] + "\n")
    result = score(str(source), "-o", str(out), "--resume", "-q")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr.decode()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r0", "r1", "r2", "r3"]


def test_a_line_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    line = json.dumps(GOOD)
    record = {**GOOD, "pad": "x" * (LIMIT - len(line) - len(', "pad": ""'))}
    text = json.dumps(record)
    assert len(text) == LIMIT
    source = tmp_path / "in.jsonl"
    source.write_text(text + "\n")
    result = score(str(source))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pad"] == record["pad"]


# ---- streams ---------------------------------------------------------------------------------------


def test_a_fifo_is_read_as_a_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*R1, "score", str(fifo), "-r", "format", "--workers", "0", "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=r1_env())
    with open(fifo, "w") as fp:
        fp.write(json.dumps(GOOD) + "\n")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["rewards"] == {"format": 1.0}


def test_process_substitution_dev_fd_is_read(tmp_path: Path) -> None:
    source = lines_file(tmp_path / "in.jsonl", json.dumps({**GOOD, "id": "m"}))
    cmd = " ".join([*R1, "score", f"<(cat {source})", "-r", "format", "--workers", "0", "-q"])
    result = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, cwd=ROOT, env=r1_env())
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["g", "m", "h"]


@pytest.mark.parametrize("how", ["path", "stdin"])
def test_an_endless_line_is_an_error_not_memory_error(how: str) -> None:
    """/dev/zero as a path (a character device), or on stdin: bounded, named, exit 1."""
    if how == "path":
        result = score("/dev/zero", "-q", timeout=30)
        where = "/dev/zero:1"
    else:
        with open("/dev/zero", "rb") as zero:
            env = r1_env(R1_MAX_LINE_BYTES=str(LIMIT))
            result = subprocess.run([*R1, "score", "-r", "format", "--workers", "0", "-q"], stdin=zero,
                                    capture_output=True, timeout=30, cwd=ROOT, env=env, check=False)
        where = "<stdin>:1"
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.startswith(f"Error: {where}: line longer than {LIMIT:,} bytes"), stderr


def test_a_bad_line_length_setting_is_an_error() -> None:
    result = run_r1("score", "-r", "format", "--workers", "0", input="", env=r1_env(R1_MAX_LINE_BYTES="lots"))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: R1_MAX_LINE_BYTES='lots' is not a positive number of bytes"), result.stderr


# ---- output --------------------------------------------------------------------------------------


def test_output_escapes_unicode_line_breaks_and_keeps_other_text() -> None:
    text = "a\u2028b\u2029c\x85d é 中"
    result = score(stdin=(json.dumps({**GOOD, "completion": text}, ensure_ascii=False) + "\n").encode())
    assert result.returncode == 0, result.stderr
    raw = result.stdout.decode()
    assert raw.count("\n") == 1 and len(raw.splitlines()) == 1  # str.splitlines splits on all three
    assert "\\u2028" in raw and "\\u2029" in raw and "\\u0085" in raw and "é 中" in raw
    assert json.loads(raw)["completion"] == text
