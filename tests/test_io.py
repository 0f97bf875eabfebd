import json
import os
import re

import pytest

from r1cli.errors import BadInput, OutputError
from r1cli.jsonl import dumps
from r1cli.prompts import load_prompts, prepare_prompts, prompt_id
from r1cli.sink import open_output
from r1cli.sources import iter_records, read_records


def write_lines(path, lines):
    path.write_bytes(b"".join(line if isinstance(line, bytes) else line.encode() for line in lines))
    return str(path)


# ---- reading ------------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_names_lines(tmp_path):
    src = write_lines(tmp_path / "a.jsonl", ['{"prompt": "x"}\n', "\n", '  \n', '{"prompt": "y"}\n'])
    assert [w for w, _ in iter_records(src)] == [f"{src}:1", f"{src}:4"]


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"prompt": "x"\n', "invalid JSON"),
        (b'["a", "b"]\n', "expected a JSON object, got an array"),
        (b'"just text"\n', "expected a JSON object, got a string"),
        (b'{"prompt": "caf\xe9"}\n', "not UTF-8"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    src = write_lines(tmp_path / "bad.jsonl", [b'{"prompt": "ok"}\n', b'{"prompt": "ok2"}\n', line])
    with pytest.raises(BadInput) as info:
        list(iter_records(src))
    assert f"{src}:3" in info.value.message
    assert message in info.value.message
    assert info.value.hint


def test_skip_invalid_counts_bad_lines(tmp_path):
    src = write_lines(tmp_path / "bad.jsonl", [b'{"prompt": "a"}\n', b"{oops\n", b'{"prompt": "b"}\n', b"\xff\n"])
    skipped: list[str] = []
    got = [r["prompt"] for r in read_records(src, skip_invalid=True, skipped=skipped)]
    assert got == ["a", "b"]
    assert skipped == [f"{src}:2", f"{src}:4"]


def test_json_array_and_parquet(tmp_path):
    rows = [{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": "2"}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert list(read_records(str(tmp_path / "d.json"))) == rows

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    located = list(iter_records(str(tmp_path / "d.parquet")))
    assert [r for _, r in located] == rows
    assert located[1][0].endswith("d.parquet:row 1")


def test_stdin(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"prompt": "hi"}\n')))
    assert list(read_records("-")) == [{"prompt": "hi"}]


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        list(iter_records(str(tmp_path / "nope.jsonl")))
    with pytest.raises(BadInput, match="is a folder"):
        list(iter_records(str(tmp_path)))


def test_unreachable_dataset_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(BadInput) as info:
        list(iter_records("no-such-org/no-such-dataset", split="test"))
    assert "dataset 'no-such-org/no-such-dataset' needs the Hugging Face hub" in info.value.message
    assert "HF_HUB_OFFLINE" in info.value.message
    assert "save a local copy" in info.value.hint and "no-such-dataset.jsonl" in info.value.hint


# ---- prompt records ---------------------------------------------------------------------


def located(*records):
    return [(f"in.jsonl:{i + 1}", r) for i, r in enumerate(records)]


def test_missing_prompt_lists_fields_and_flag():
    with pytest.raises(BadInput) as info:
        list(prepare_prompts(located({"prompt": "ok"}, {"problem": "2+2?", "solution": "4"})))
    assert info.value.message == "in.jsonl:2: no 'prompt' field"
    assert "problem, solution" in info.value.hint and "--prompt-field" in info.value.hint


@pytest.mark.parametrize("prompt", ["", "   ", 42, None, [], [{"role": "user"}], [{"content": "x"}]])
def test_invalid_prompt_values(prompt):
    with pytest.raises(BadInput, match="in.jsonl:1: 'prompt' must be"):
        list(prepare_prompts(located({"prompt": prompt})))


def test_field_mapping_and_extraction():
    gsm = {"question": "Tom has 3 apples…", "answer": "3 + 4 = 7\n#### 1,007"}
    math = {"problem": "Half of 1?", "solution": r"It is $\boxed{\frac{1}{2}}$."}
    (_, a), = prepare_prompts(located(gsm), prompt_field="question", extract="gsm8k")
    assert a["prompt"] == gsm["question"] and a["answer"] == "1007" and a["question"] == gsm["question"]
    (_, b), = prepare_prompts(located(math), prompt_field="problem", answer_field="solution", extract="boxed")
    assert b["answer"] == r"\frac{1}{2}" and b["solution"] == math["solution"]


def test_extraction_failure_names_the_line():
    with pytest.raises(BadInput, match=r"in.jsonl:1: no '#### <answer>' in 'answer'"):
        list(prepare_prompts(located({"prompt": "q", "answer": "no marker"}), extract="gsm8k"))


def test_ids_are_stable_and_unique():
    recs = located({"prompt": "same"}, {"prompt": "other"}, {"prompt": "same"}, {"prompt": "x", "id": 7})
    ids = [r["id"] for _, r in prepare_prompts(recs)]
    assert ids == [prompt_id("same"), prompt_id("other"), prompt_id("same") + "-2", "7"]
    assert ids == [r["id"] for _, r in prepare_prompts(recs)]  # same input, same ids
    messages = [{"role": "user", "content": "hi"}]
    assert prompt_id(messages) == prompt_id([{"content": "hi", "role": "user"}])


def test_duplicate_explicit_id_is_an_error():
    with pytest.raises(BadInput, match="in.jsonl:2: duplicate id 'a' \\(first at in.jsonl:1\\)"):
        list(prepare_prompts(located({"prompt": "p", "id": "a"}, {"prompt": "q", "id": "a"})))


def test_load_prompts_keeps_unknown_keys(tmp_path):
    src = write_lines(tmp_path / "p.jsonl", ['{"prompt": "p", "answer": "1", "src": "gsm8k"}\n'])
    (rec,) = load_prompts(src)
    assert rec["src"] == "gsm8k" and rec["answer"] == "1" and rec["id"] == prompt_id("p")


# ---- writing and resuming ---------------------------------------------------------------------


def test_file_output_is_atomic(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    with open_output(str(out)) as sink:
        sink.write({"a": "é"})
        assert not out.exists() and (tmp_path / "sub" / "out.jsonl.part").exists()
    assert out.read_text(encoding="utf-8") == '{"a": "é"}\n'
    assert not (tmp_path / "sub" / "out.jsonl.part").exists()


def test_error_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(BadInput):
        with open_output(str(out)) as sink:
            sink.write({"a": 1})
            raise BadInput("x")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_keeps_partial_for_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with open_output(str(out)) as sink:
            sink.write({"a": 1})
            raise KeyboardInterrupt
    assert not out.exists()
    assert (tmp_path / "out.jsonl.part").read_text() == '{"a": 1}\n'


def group(rid, n):
    return [{"id": rid, "sample": s} for s in range(n)]


@pytest.mark.parametrize(
    "tail, kept",
    [
        ("", {"a", "b"}),  # clean
        (dumps({"id": "c", "sample": 0}), {"a", "b"}),  # incomplete group
        (dumps({"id": "c", "sample": 0}) + '{"id": "c", "sam', {"a", "b"}),  # cut mid-line
        ('{"id": "c"', {"a", "b"}),  # cut mid-line, first record of a group
    ],
)
def test_resume_groups_drops_incomplete_tail(tmp_path, tail, kept):
    part = tmp_path / "out.jsonl.part"
    body = "".join(dumps(r) for r in group("a", 2) + group("b", 2))
    part.write_text(body + tail)
    with open_output(str(tmp_path / "out.jsonl"), resume=True) as sink:
        assert sink.resume_groups(2) == kept
        sink.write_many(group("c", 2))
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["sample"]) for r in lines] == [(g, s) for g in "abc" for s in range(2)]


def test_resume_continues_a_finished_file(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("".join(dumps(r) for r in group("a", 2)))
    with open_output(str(out), resume=True) as sink:
        assert sink.resume_groups(2) == {"a"}
    assert len(out.read_text().splitlines()) == 2


def test_resume_records_cuts_partial_line(tmp_path):
    part = tmp_path / "o.jsonl.part"
    part.write_text('{"x": 1}\n{"x": 2}\n{"x"')
    with open_output(str(tmp_path / "o.jsonl"), resume=True) as sink:
        assert sink.resume_records() == 2
        sink.write({"x": 3})
    assert (tmp_path / "o.jsonl").read_text() == '{"x": 1}\n{"x": 2}\n{"x": 3}\n'


def test_resume_refuses_a_file_with_a_repeated_group(tmp_path):
    part = tmp_path / "o.jsonl.part"
    part.write_text("".join(dumps(r) for r in group("a", 1) + group("b", 1) + group("a", 1)))
    with pytest.raises(OutputError, match="group 'a' appears twice"):
        with open_output(str(tmp_path / "o.jsonl"), resume=True) as sink:
            sink.resume_groups(1)
    assert part.exists()  # resume never deletes work


def test_full_disk_is_a_clear_error_without_partial_line(tmp_path):
    # /dev/full answers every write with ENOSPC.
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    from r1cli.sink import Sink

    target = tmp_path / "o.part"
    target.write_text('{"ok": 1}\n')
    fp = open("/dev/full", "w", encoding="utf-8")
    sink = Sink(fp, str(target), resume=True)
    sink._good = target.stat().st_size
    with pytest.raises(OutputError, match="No space left"):
        sink.write({"x": "y" * 10000})
    assert target.read_text() == '{"ok": 1}\n'


# ---- records nothing may crash on (issue: hostile input) --------------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    ('{"n": ' + "1" * 4301 + "}", "a number of more than 4,300 digits"),
    ('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", "JSON nested too deep to read"),
    ('{"v": NaN}', "NaN is not JSON"),
    ('{"v": Infinity}', "Infinity is not JSON"),
    ('{"v": -1e400}', "-1e400 is not JSON"),
    ('{"v": 1', "invalid JSON (Expecting ',' delimiter at column 8)"),
])
def test_decode_line_names_the_place(line, message):
    from r1cli.jsonl import decode_line

    with pytest.raises(BadInput, match=re.escape(f"f.jsonl:3: {message}")):
        decode_line(line, "f.jsonl:3")


def test_decode_line_keeps_what_json_allows():
    from r1cli.jsonl import decode_line

    assert decode_line('{"n": ' + "1" * 4300 + ', "f": 1e308, "d": [[[1]]]}', "x") == {
        "n": int("1" * 4300), "f": 1e308, "d": [[[1]]]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_dumps_refuses_nan_naming_the_key(value):
    from r1cli.errors import OutputError
    from r1cli.jsonl import dumps

    with pytest.raises(OutputError, match=r"whose 'rewards.acc' is .*JSON has no NaN or Infinity"):
        dumps({"rewards": {"fmt": 1.0, "acc": value}})


def test_dumps_escapes_unicode_line_breaks_only():
    from r1cli.jsonl import dumps

    line = dumps({"t": "a\u2028b\u2029c\x85d\u00e9\u4e2d"})
    assert line.splitlines() == [line[:-1]] and line.endswith("\n")
    assert "\u00e9\u4e2d" in line and json.loads(line) == {"t": "a\u2028b\u2029c\x85d\u00e9\u4e2d"}


# ---- manifests, the lock, atomic files -----------------------------------------------------------


def spec(**settings):
    from r1cli.manifest import Spec

    return Spec("test", {"n": 1, **settings}, frozenset({"workers"}))


def test_a_file_output_carries_its_manifest_beside_it(tmp_path):
    out = tmp_path / "out.jsonl"
    with open_output(str(out), spec=spec()) as sink:
        records = sink.track_input(iter([("in:1", {"a": 1}), ("in:2", {"a": 2})]), source="in.jsonl")
        sink.write_many(record for _, record in records)
        part = json.loads((tmp_path / "out.jsonl.part.r1.json").read_text())
        assert part["complete"] is False and part["command"] == "test" and part["settings"] == {"n": 1}
        assert not (tmp_path / "out.jsonl.r1.json").exists()
        assert (tmp_path / "out.jsonl.lock").exists()
    done = json.loads((tmp_path / "out.jsonl.r1.json").read_text())
    assert done["complete"] is True and done["input"]["records"] == 2 and done["output"]["records"] == 2
    assert done["input"]["sha256"] == done["output"]["sha256"]  # the same two records, as JSON lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.r1.json"]


def test_a_failed_run_leaves_neither_file_nor_manifest_nor_lock(tmp_path):
    with pytest.raises(BadInput):
        with open_output(str(tmp_path / "out.jsonl"), spec=spec()) as sink:
            sink.write({"a": 1})
            raise BadInput("x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"n": 2}, r"out.jsonl was made with other settings \(--n: 1 on record, 2 now\)"),
    ({"n": 1, "seed": 3}, r"\(--seed: none on record, 3 now\)"),
])
def test_resume_refuses_other_settings_and_keeps_the_file(tmp_path, settings, message):
    from r1cli.errors import ResumeMismatch
    from r1cli.manifest import Spec

    out = tmp_path / "out.jsonl"
    with open_output(str(out), spec=spec()) as sink:
        sink.write({"a": 1})
    before = out.read_bytes(), (tmp_path / "out.jsonl.r1.json").read_bytes()
    with pytest.raises(ResumeMismatch, match=message):
        with open_output(str(out), resume=True, spec=Spec("test", settings)):
            raise AssertionError("not reached")
    assert (out.read_bytes(), (tmp_path / "out.jsonl.r1.json").read_bytes()) == before
    with open_output(str(out), resume=True, spec=spec(workers=8)) as sink:  # may change: accepted
        assert sink.resume_records() == 1


def test_resume_refuses_another_command(tmp_path):
    from r1cli.errors import ResumeMismatch
    from r1cli.manifest import Spec

    out = tmp_path / "out.jsonl"
    with open_output(str(out), spec=spec()) as sink:
        sink.write({"a": 1})
    with pytest.raises(ResumeMismatch, match="was written by r1 test, not r1 score"):
        with open_output(str(out), resume=True, spec=Spec("score", {"n": 1})):
            pass


def test_an_input_refused_after_records_were_written_leaves_the_file_as_it_was(tmp_path):
    """The fingerprint on record covers 3 input records: a resume whose third differs is refused when
    it reads it, and what it wrote from the first two goes again."""
    from r1cli.errors import ResumeMismatch

    out = tmp_path / "out.jsonl"
    with open_output(str(out), spec=spec()) as sink:
        for where, record in sink.track_input(iter([("1", {"a": 1}), ("2", {"a": 2}), ("3", {"a": 3})]), source="x"):
            pass
    before = out.read_bytes()
    with pytest.raises(ResumeMismatch, match="x is not the input .* first 3 records differ"):
        with open_output(str(out), resume=True, spec=spec()) as sink:
            sink.resume_records()
            for where, record in sink.track_input(iter([("1", {"a": 1}), ("2", {"a": 2}), ("3", {"a": 9})]),
                                                  source="x"):
                sink.write({"wrote": record["a"]})
    assert out.read_bytes() == before and not (tmp_path / "out.jsonl.part").exists()


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    from r1cli.files import exclusive, lock_file

    out = tmp_path / "out.jsonl"
    with exclusive(lock_file(out), what=str(out)):
        refused = rf"out.jsonl is being written by another r1 process \(pid {os.getpid()}\)"
        with pytest.raises(OutputError, match=refused):
            with open_output(str(out), resume=True):
                pass
    assert list(tmp_path.iterdir()) == []  # the refused writer touched nothing, the lock file went with its holder


def test_write_atomic_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    from r1cli.files import write_atomic, write_json

    path = tmp_path / "sub" / "results.json"
    write_json(path, {"a": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "é"}

    def failing(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OutputError, match="cannot write .*results.json: No space left on device") as caught:
        write_atomic(path, "new")
    assert "free some space" in caught.value.hint
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "é"}  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary left
