"""The R1 evaluation protocol by name, the aime25 and livecodebench presets on small local files,
avg@k naming, and r1 report's warning across protocols."""

import base64
import json
import pickle
import zlib

import pytest
import typer
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.errors import BadInput
from r1cli.eval_protocol import lcb_record, protocol_samples
from r1cli.evaluation import EvalSettings, benchmark_metrics, load_benchmark

runner = CliRunner()


@pytest.mark.parametrize("spec, k", [
    ("aime24", 64), ("aime25", 64), ("aime25=local.jsonl", 64), ("math500", 4), ("gpqa-diamond", 8),
    ("livecodebench", 16), ("gsm8k", 4), ("my.jsonl", 4),
])
def test_r1_protocol_k_by_benchmark(spec, k):
    assert protocol_samples("r1", spec, 2) == k
    assert protocol_samples(None, spec, 2) == 2


def settings_from(args):
    from r1cli.cli.eval import _settings
    from r1cli.engines.options import EngineChoice

    flags = {"from_files": None, "data": ["math500"], "model": "tiny", "split": None, "prompt_field": None,
             "answer_field": None, "extract_answer": None, "engine": EngineChoice("hf"), "template": None, "system": None,
             "prefill": None, "samples": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_new_tokens": 512,
             "seed": 0, "pass_k": None, "limit": None, "instruction": None,
             "protocol": "r1", "think_budget": None, "min_think": None, "answer_budget": None, "stop": None, **args}
    return _settings(flags)


def test_protocol_r1_sets_the_sampling():
    s = settings_from({})
    assert (s.protocol, s.max_new_tokens, s.temperature, s.top_p) == ("r1", 32768, 0.6, 0.95)
    assert s.to_json()["protocol"] == "r1"


@pytest.mark.parametrize("flag, value, name", [
    ("max_new_tokens", 1024, "--max-new-tokens"), ("temperature", 1.0, "--temperature"), ("samples", 8, "-n"),
    ("top_p", 1.0, "--top-p"),
])
def test_protocol_r1_refuses_contradicting_flags(flag, value, name):
    with pytest.raises(typer.BadParameter, match=f"sets {name}"):
        settings_from({flag: value})


def test_unknown_protocol_is_a_usage_error():
    with pytest.raises(typer.BadParameter, match="unknown protocol"):
        settings_from({"protocol": "lighteval"})


def test_aime25_preset_on_a_local_copy(tmp_path):
    path = tmp_path / "aime25.jsonl"
    path.write_text("".join(json.dumps({"id": f"2025-I-{i}", "problem": f"Find {i}+1.", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    bench = load_benchmark(f"aime25={path}")
    assert [r["id"] for r in bench.records] == ["2025-I-0", "2025-I-1", "2025-I-2"]
    assert bench.records[1]["answer"] == "2" and bench.records[1]["prompt"].startswith("Find 1+1.")
    assert "\\boxed{}" in bench.records[0]["prompt"] and bench.info["preset"] == "aime25"


def packed(cases):
    """LiveCodeBench's private-test encoding: base64 of zlib of a pickled JSON text."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def test_livecodebench_preset_maps_problems_and_tests(tmp_path):
    rows = [
        {"question_id": "abc301_a", "question_title": "A", "question_content": "Read n, print 2n.",
         "starter_code": "", "public_test_cases": json.dumps([{"input": "2\n", "output": "4\n", "testtype": "stdin"}]),
         "private_test_cases": packed([{"input": "5\n", "output": "10\n", "testtype": "stdin"}])},
        {"question_id": "lc_1", "question_content": "Two sum.", "starter_code": "class Solution:\n    pass",
         "public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "stdin"},
                                          {"input": "[1]", "output": "0", "testtype": "functional"}]),
         "private_test_cases": ""},
    ]
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = load_benchmark(f"livecodebench={path}")
    first, second = bench.records
    assert first["id"] == "abc301_a" and first["task"] == "code"
    assert first["tests"] == [{"input": "2\n", "output": "4\n"}, {"input": "5\n", "output": "10\n"}]
    assert "```python" in first["prompt"] and "stdin" in first["prompt"]
    assert second["tests"] == [{"input": "1", "output": "1"}]  # the functional test needs a harness: left out
    assert "Starter code" in second["prompt"]


@pytest.mark.parametrize("row, message", [
    ({"question_id": "f", "question_content": "x",
      "public_test_cases": json.dumps([{"input": "[1]", "output": "0", "testtype": "functional"}])},
     "no stdin/stdout tests"),
    ({"question_id": "p", "question_content": "x", "public_test_cases": "[]",
      "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps(BadInput("boom")))).decode()},
     "unreadable test cases"),  # a pickle that would build an object is refused, not loaded
    ({"question_id": "z", "question_content": "x", "public_test_cases": "not json, not base64!"},
     "unreadable test cases"),
])
def test_livecodebench_refuses_what_it_cannot_score(row, message):
    with pytest.raises(BadInput, match=message):
        lcb_record(row, 0)


def test_livecodebench_file_error_names_the_line(tmp_path):
    path = tmp_path / "lcb.jsonl"
    path.write_text(json.dumps({"question_id": "q", "question_content": "x", "public_test_cases": "[]"}) + "\n")
    with pytest.raises(BadInput, match=r"lcb\.jsonl:1.*no stdin/stdout tests"):
        load_benchmark(f"livecodebench={path}")


def test_metrics_name_pass_at_1_avg_at_k():
    scored = [{"id": "q", "sample": s, "rewards": {"accuracy": float(s % 2)}, "pred": str(s % 2)} for s in range(4)]
    metrics = benchmark_metrics("b", scored)
    assert metrics["avg@4"] == metrics["pass@1"] == 0.5


def test_settings_refuse_min_think_over_the_smallest_budget():
    with pytest.raises(ValueError, match="smallest"):
        EvalSettings(think_budget=(16, 64), min_think=32)


def results(folder, protocol, max_new_tokens):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({
        "settings": {"model": "m", "protocol": protocol, "max_new_tokens": max_new_tokens, "temperature": 0.6},
        "benchmarks": [{"data": "aime24", "questions": 30, "samples": 4, "pass@1": 0.5}]}))
    return str(folder)


def test_report_warns_when_protocols_differ(tmp_path):
    a = results(tmp_path / "a", "r1", 32768)
    b = results(tmp_path / "b", None, 512)
    c = results(tmp_path / "c", "r1", 32768)
    result = runner.invoke(app, ["report", a, b])
    assert result.exit_code == 0, result.stderr
    assert "different protocols" in result.stderr and "protocol r1 (a) vs none (b)" in result.stderr
    assert "warning" not in result.stdout
    same = runner.invoke(app, ["report", a, c])
    assert same.exit_code == 0 and "different protocols" not in same.stderr


def test_report_draws_the_scaling_curve(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"settings": {"model": "m"}, "benchmarks": [
        {"data": f"q@think{b}", "benchmark": "q", "think_budget": b, "mean_think_tokens": b * 0.9,
         "questions": 5, "samples": 2, "pass@1": b / 200} for b in (16, 32, 64)]}))
    result = runner.invoke(app, ["report", str(folder), "-o", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "plots" / "test_time_scaling.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "think_tokens.png").stat().st_size > 1000
