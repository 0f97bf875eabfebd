"""`r1 eval`: metrics from files with known answers, presets offline, and end to end on the tiny model."""

import json
import random
import time

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.evaluation import PRESETS, load_benchmark

runner = CliRunner()


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def write(path, records):
    path.write_text(jsonl(records))
    return str(path)


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def rollout_rec(qid, sample, answer, completion, *, tokens=10, reason="stop"):
    return {"id": qid, "prompt": f"question {qid}", "answer": answer, "sample": sample, "completion": completion,
            "finish_reason": reason, "prompt_tokens": 5, "completion_tokens": tokens, "model": "m"}


def boxed(x):
    return rf"<think>working</think><answer>\boxed{{{x}}}</answer>"


# Three questions, 4 samples each; hand-computed: pass@1 = (3/4 + 1/4 + 2/4)/3 = 0.5,
# cons@4 = 2/3 (q2's majority, 6, is wrong; q3's 2–2 tie goes to the first class, 2),
# pass@2 = (1 + 1/2 + 5/6)/3, pass@4 = 1.
KNOWN = [
    rollout_rec("q1", 0, "0.5", boxed("1/2")),
    rollout_rec("q1", 1, "0.5", boxed(r"\frac12")),
    rollout_rec("q1", 2, "0.5", r"so \boxed{0.5}"),  # right, but not in the R1-Zero format
    rollout_rec("q1", 3, "0.5", boxed("3"), tokens=50, reason="length"),
    rollout_rec("q2", 0, "7", boxed("6")),
    rollout_rec("q2", 1, "7", boxed("6")),
    rollout_rec("q2", 2, "7", boxed("7")),
    rollout_rec("q2", 3, "7", "I give up", tokens=50, reason="length"),
    rollout_rec("q3", 0, "2", boxed("2")),
    rollout_rec("q3", 1, "2", boxed("3")),
    rollout_rec("q3", 2, "2", boxed("3")),
    rollout_rec("q3", 3, "2", boxed("2.0")),
]


def check_known(m):
    assert m["questions"] == 3 and m["samples"] == 4 and m["unscorable"] == 0
    assert m["pass@1"] == pytest.approx(0.5)
    assert m["cons@4"] == pytest.approx(2 / 3)
    assert m["pass@2"] == pytest.approx((1 + 0.5 + 5 / 6) / 3)
    assert m["pass@4"] == pytest.approx(1.0)
    assert m["truncated"] == pytest.approx(2 / 12)
    assert m["mean_tokens"] == pytest.approx((10 * 10 + 2 * 50) / 12)
    assert m["format"] == pytest.approx(10 / 12)
    assert m["answered"] == pytest.approx(11 / 12)
    assert m["model"] == "m"
    lo, hi = m["pass@1_ci"]
    assert 0.25 <= lo <= 0.5 <= hi <= 0.75


def test_from_rollouts_scores_them_and_computes_the_known_metrics(tmp_path):
    shuffled = KNOWN[:]
    random.Random(0).shuffle(shuffled)  # a question's samples need not be contiguous
    path = write(tmp_path / "rollouts.jsonl", shuffled)
    result = runner.invoke(app, ["eval", "--from", path, "--pass-k", "1,2,4", "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    (m,) = lines(result.stdout)  # stdout: one JSON line per benchmark, nothing else
    assert m["data"] == path
    check_known(m)
    table = result.stderr.splitlines()  # the table is on stderr
    # data are fractions (above); the human table shows percentages and labels them "%"
    assert table[0].split() == ["benchmark", "questions", "n", "avg@4", "%", "95%", "CI", "%", "cons@4", "%",
                                "pass@2", "%", "pass@4", "%", "tokens", "trunc.", "%", "format", "%"]
    cells = table[1].split()[1:]  # after the (folded) benchmark name
    assert cells[:3] == ["3", "4", "50.0"] and cells[4:7] == ["66.7", "77.8", "100.0"]


def test_from_scored_records_keeps_their_rewards(tmp_path):
    scored = [{**r, "rewards": {"accuracy": 1.0, "format": 0.0}, "pred": "x"} for r in KNOWN[:4]]
    path = write(tmp_path / "scored.jsonl", scored)
    result = runner.invoke(app, ["eval", "--from", path, "-q"])
    assert result.exit_code == 0, result.stderr
    (m,) = lines(result.stdout)
    assert (m["pass@1"], m["cons@4"], m["format"]) == (1.0, 1.0, 0.0)  # not re-scored
    assert [k for k in m if k.startswith("pass@") and k != "pass@1_ci"] == ["pass@1", "pass@4"]  # default ks
    assert result.stderr == ""  # -q: no table


def test_rescore_judges_scored_records_again(tmp_path):
    path = write(tmp_path / "scored.jsonl", [{**r, "rewards": {"accuracy": 0.0}} for r in KNOWN])
    kept = runner.invoke(app, ["eval", "--from", path, "-q", "--workers", "0"])
    again = runner.invoke(app, ["eval", "--from", path, "-q", "--workers", "0", "--rescore", "--pass-k", "1,2,4"])
    assert kept.exit_code == again.exit_code == 0, kept.stderr + again.stderr
    assert lines(kept.stdout)[0]["pass@1"] == 0.0
    check_known(lines(again.stdout)[0])


def test_from_writes_results_and_scored_samples(tmp_path):
    path = write(tmp_path / "rollouts.jsonl", KNOWN)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--from", path, "--pass-k", "1,2,4", "-o", str(out), "--workers", "0"])
    assert result.exit_code == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    (bench,) = results["benchmarks"]
    check_known(bench)
    assert bench["samples_file"] == "rollouts.samples.jsonl"
    samples = lines((out / "rollouts.samples.jsonl").read_text())
    assert len(samples) == 12 and all("rewards" in s and "accuracy" in s["rewards"] for s in samples)
    assert [s["pred"] for s in samples[:3]] == ["1/2", r"\frac12", "0.5"]
    assert results["settings"]["from_files"] == [path] and results["settings"]["pass_k"] == [1, 2, 4]
    assert "temperature" not in results["settings"]  # nothing was sampled
    assert {"r1cli", "math-verify"} <= set(results["versions"])
    assert not list(out.glob("*.part"))


@pytest.mark.parametrize(("records", "args", "message"), [
    (KNOWN, ["--pass-k", "8"], "pass@8 needs at least 8 samples per question, there are 4"),
    (KNOWN[:7], [], "questions have different numbers of samples (3, 4; e.g. 'q2' has 3)"),
    ([{"completion": "x"}], [], "no 'id' (nor 'prompt')"),
    ([{"id": "a", "answer": "1"}], [], "no 'completion' field"),
])
def test_from_refuses_what_it_cannot_evaluate(tmp_path, records, args, message):
    path = write(tmp_path / "bad.jsonl", records)
    result = runner.invoke(app, ["eval", "--from", path, "--workers", "0", *args])
    assert result.exit_code == 1
    assert message in result.stderr and result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "tiny", "--data", "x.jsonl", "-n", "4", "--pass-k", "1,8"], "--pass-k 8 is more than -n 4"),
    (["-m", "tiny", "--data", "x.jsonl", "--pass-k", "1,x"], "not a list of integers"),
    (["--from", "a.jsonl", "-m", "tiny"], "drop -m"),
    (["--from", "a.jsonl", "--data", "gsm8k"], "drop --data"),
    (["-m", "tiny"], "give a benchmark"),
])
def test_usage_errors(args, message):
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to load")

    monkeypatch.setattr("r1cli.models.load_model", refuse)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_without_the_hub_fails_fast_suggesting_a_local_copy(preset, no_model):
    start = time.perf_counter()
    result = runner.invoke(app, ["eval", "-m", "tiny", "--data", preset])
    assert result.exit_code == 1
    assert f"preset '{preset}' needs the Hugging Face hub" in result.stderr
    assert f"--data {preset}={preset}.jsonl" in result.stderr and "to_json" in result.stderr
    assert time.perf_counter() - start < 5


def test_an_unreachable_hub_fails_fast(monkeypatch, no_model):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    result = runner.invoke(app, ["eval", "-m", "tiny", "--data", "math500"])
    assert result.exit_code == 1
    assert "the Hugging Face hub is unreachable" in result.stderr and "--data math500=math500.jsonl" in result.stderr
    assert time.perf_counter() - start < 12


def test_bad_data_is_refused_before_a_model_loads(tmp_path, no_model):
    path = write(tmp_path / "p.jsonl", [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?"}])
    result = runner.invoke(app, ["eval", "-m", "tiny", "--data", path])
    assert result.exit_code == 1
    assert f"{path}:2: no 'answer' field: a question needs its gold answer" in result.stderr


GSM8K_ROWS = [{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7\n#### 7"},
              {"question": "A box holds 1,000 pens; 1 is lost. How many are left?", "answer": "#### 999"}]
GPQA_ROWS = [{"Question": f"Which is number {i}?", "Correct Answer": f"right {i}", "Incorrect Answer 1": "w1",
              "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3", "Record ID": f"rec{i}"} for i in range(8)]


def test_presets_on_local_copies(tmp_path):
    gsm = load_benchmark(f"gsm8k={write(tmp_path / 'gsm8k.jsonl', GSM8K_ROWS)}")
    assert [r["answer"] for r in gsm.records] == ["7", "999"]
    assert gsm.records[0]["prompt"].endswith("How many?\nPlease reason step by step, and put your final answer "
                                             "within \\boxed{}.")
    assert gsm.info["preset"] == "gsm8k" and gsm.info["instruction"].startswith("Please reason")

    path = write(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    gpqa = load_benchmark(f"gpqa-diamond={path}", seed=0)
    again = load_benchmark(f"gpqa-diamond={path}", seed=0, limit=3)
    other = load_benchmark(f"gpqa-diamond={path}", seed=1)
    assert [r["id"] for r in gpqa.records] == [f"rec{i}" for i in range(8)]
    for i, r in enumerate(gpqa.records):
        assert r["task"] == "choice" and sorted(r["choices"]) == [f"right {i}", "w1", "w2", "w3"]
        assert r["choices"]["ABCD".index(r["answer"])].startswith("right")
        assert f"\n{r['answer']}) right" in r["prompt"]
    assert len({r["answer"] for r in gpqa.records}) > 1  # shuffled: the right answer is not always A
    assert [r["choices"] for r in again.records] == [r["choices"] for r in gpqa.records[:3]]  # seeded per question
    assert [r["choices"] for r in other.records] != [r["choices"] for r in gpqa.records]


def test_mapping_flags_apply_to_files_not_presets(tmp_path):
    gsm = write(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)
    mine = write(tmp_path / "mine.jsonl", [{"q": "1+1?", "a": "2"}])
    assert load_benchmark(f"gsm8k={gsm}", prompt_field="q", answer_field="a").records[0]["answer"] == "7"
    assert load_benchmark(mine, prompt_field="q", answer_field="a").records[0]["answer"] == "2"
    result = runner.invoke(app, ["eval", "--data", f"gsm8k={gsm}", "--prompt-field", "question"])
    assert result.exit_code == 2 and "presets bring their own split and fields" in result.stderr
    with pytest.raises(Exception, match="'gsm9k' is not a preset"):
        load_benchmark("gsm9k=x.jsonl")


def test_end_to_end_on_the_tiny_model(tmp_path, tiny_model):
    gsm = write(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)
    mine = write(tmp_path / "mine.jsonl", [{"id": "a", "prompt": "Compute 2 + 3.", "answer": "5"},
                                           {"id": "b", "prompt": "Compute 4 * 2.", "answer": "8"},
                                           {"id": "c", "prompt": "What is 1/2?", "answer": "0.5"}])
    out = tmp_path / "eval"
    args = ["eval", "-m", tiny_model, "--data", f"gsm8k={gsm}", "--data", mine, "-n", "2", "--max-new-tokens", "4",
            "--template", "r1-zero", "--seed", "3", "-o", str(out)]  # scored in the worker pool
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    gsm_line, mine_line = lines(result.stdout)
    assert gsm_line["data"] == f"gsm8k={gsm}" and mine_line["data"] == mine
    assert (gsm_line["questions"], mine_line["questions"]) == (2, 3)
    for m in (gsm_line, mine_line):
        assert m["samples"] == 2 and {"pass@1", "cons@2", "pass@2", "pass@1_ci"} <= set(m)
        assert 0 <= m["pass@1"] <= 1 and 0 < m["mean_tokens"] <= 4
        assert m["model"] == tiny_model
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    assert [settings[k] for k in ("model", "engine", "template", "samples")] == [tiny_model, "hf", "r1-zero", 2]
    assert [settings[k] for k in ("temperature", "top_p", "max_new_tokens", "seed")] == [0.6, 0.95, 4, 3]
    assert "torch" in results["versions"] and "transformers" in results["versions"]
    files = [b["samples_file"] for b in results["benchmarks"]]
    assert files == ["gsm8k.samples.jsonl", "mine.samples.jsonl"]
    samples = lines((out / "mine.samples.jsonl").read_text())
    assert [(s["id"], s["sample"]) for s in samples] == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)]
    assert all(set(s["rewards"]) == {"accuracy", "format"} and s["completion_tokens"] <= 4 for s in samples)
    gsm_samples = lines((out / "gsm8k.samples.jsonl").read_text())
    assert gsm_samples[0]["prompt"].endswith("within \\boxed{}.") and gsm_samples[0]["answer"] == "7"
    # the samples evaluate to the same metrics when read back
    again = runner.invoke(app, ["eval", "--from", str(out / "mine.samples.jsonl"), "-q", "--workers", "0"])
    assert again.exit_code == 0, again.stderr
    back = lines(again.stdout)[0]
    assert {k: back[k] for k in ("pass@1", "cons@2", "pass@2", "mean_tokens")} == \
        {k: mine_line[k] for k in ("pass@1", "cons@2", "pass@2", "mean_tokens")}


FORCED = " <think>2 + 2 = 4</think> <answer>4</answer> User: and what is 3 + 3?"


@pytest.fixture
def forced(monkeypatch, tiny_model):
    """The hf engine's tiny model, made to write FORCED, token by token, in every row."""
    from r1cli.engines.hf import HFEngine
    from r1cli.models import load_tokenizer

    script = load_tokenizer(tiny_model)(FORCED, add_special_tokens=False)["input_ids"]
    real = HFEngine._forward
    step = [0]

    def scripted(self, input_ids, attention, positions, cache, *, prefill):
        logits = real(self, input_ids, attention, positions, cache, prefill=prefill)
        step[0] = 0 if prefill else step[0] + 1
        if step[0] < len(script):
            logits[:] = -1e9
            logits[:, script[step[0]]] = 1e9
        return logits

    monkeypatch.setattr(HFEngine, "_forward", scripted)
    return len(script)


@pytest.mark.parametrize("stop, kept, fmt", [
    (["--stop", "</answer>"], " <think>2 + 2 = 4</think> <answer>4</answer>", 1.0),
    ([], FORCED, 0.0),  # the same text without the stop string runs on past the answer
])
def test_a_stop_at_the_answer_close_keeps_it_and_the_format_reward_sees_it(tmp_path, tiny_model, forced, stop,
                                                                           kept, fmt):
    data = write(tmp_path / "q.jsonl", [{"id": "q", "prompt": "What is 2 + 2?", "answer": "4"}])
    common = ["-m", tiny_model, "--template", "r1-zero", "-n", "2", "--max-new-tokens", str(forced), *stop]
    rolled = runner.invoke(app, ["rollout", data, "-q", *common])
    assert rolled.exit_code == 0, rolled.stderr
    assert [r["completion"] for r in lines(rolled.stdout)] == [kept, kept]
    result = runner.invoke(app, ["eval", "--data", data, "-q", "--workers", "0", "-o", str(tmp_path / "e"), *common])
    assert result.exit_code == 0, result.stderr
    (m,) = lines(result.stdout)
    assert m["format"] == fmt and m["pass@1"] == 1.0
    samples = lines((tmp_path / "e" / "q.samples.jsonl").read_text())
    assert [s["completion"] for s in samples] == [kept, kept]
    assert [s["finish_reason"] for s in samples] == ["stop" if stop else "length"] * 2
