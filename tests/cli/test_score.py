import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from typer.testing import CliRunner

from r1cli import rewards
from r1cli.cli import app

runner = CliRunner()

OK = "<think>2 + 2 = 4</think><answer>4</answer>"
ROWS = [
    {"id": "a", "sample": 0, "completion": OK, "answer": "4", "src": "unit"},
    {"id": "a", "sample": 1, "completion": r"<think>hmm</think> so \boxed{5}", "answer": "4"},
    {"id": "b", "sample": 0, "completion": OK},
]


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


def score(*args, input=None):
    return runner.invoke(app, ["score", *args], input=jsonl(ROWS) if input is None else input)


def parse(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_scores_stdin_to_stdout_with_the_summary_on_stderr():
    result = score()
    assert result.exit_code == 0, result.stderr
    out = parse(result.stdout)  # stdout is JSONL only
    assert [(r["id"], r["sample"]) for r in out] == [("a", 0), ("a", 1), ("b", 0)]
    assert [r["rewards"] for r in out] == [
        {"accuracy": 1.0, "format": 1.0},
        {"accuracy": 0.0, "format": 0.0},
        {"accuracy": None, "format": 1.0},
    ]
    assert [r["reward"] for r in out] == [2.0, 0.0, 1.0]
    assert [r["pred"] for r in out] == ["4", "5", "4"]
    assert out[0]["src"] == "unit"
    assert "Warning: 1 records lack 'answer', which accuracy needs: scored null" in result.stderr
    assert "scored 3 completions (1 unscorable, 0 timed out) in " in result.stderr


@pytest.mark.parametrize(("args", "rewards_", "total"), [
    (["-r", "accuracy", "-r", "format:0.5"], {"accuracy": 1.0, "format": 1.0}, 1.5),
    (["-r", "format:-2"], {"format": 1.0}, -2.0),
    (["-r", "tags", "--workers", "0"], {"tags": 1.0}, 1.0),
    (["-r", "accuracy", "--workers", "1", "--timeout", "3"], {"accuracy": 1.0}, 1.0),
])
def test_reward_selection_and_weights(args, rewards_, total):
    result = score(*args, "-q", input=jsonl(ROWS[:1]))
    assert result.exit_code == 0, result.stderr
    (out,) = parse(result.stdout)
    assert (out["rewards"], out["reward"]) == (rewards_, total)
    assert result.stderr == ""  # -q: no summary


def test_list_shows_every_reward_and_its_parameters():
    result = runner.invoke(app, ["score", "--list"])
    assert result.exit_code == 0, result.stderr
    for entry in rewards.describe():
        assert entry["name"] in result.stdout
        for param in entry["params"]:
            assert param["name"] in result.stdout
    assert "fallback" in result.stdout and "'none'" in result.stdout


def test_reward_args_reach_the_reward():
    row = {"completion": "<think>2+2</think> It is 4.", "answer": "4"}
    plain = score("-r", "accuracy", "--reward-arg", "accuracy.extract=tag", "-q", input=jsonl([row]))
    fallback = score("-r", "accuracy", "--reward-arg", "accuracy.extract=tag", "--reward-arg",
                     "accuracy.fallback=last-number", "-q", input=jsonl([row]))
    assert parse(plain.stdout)[0]["rewards"] == {"accuracy": 0.0}
    assert parse(fallback.stdout)[0]["rewards"] == {"accuracy": 1.0}


def test_language_sets_the_language_rewards_target():
    row = {"completion": "<think>First add the two numbers, then check the result carefully.</think> 4"}
    english = score("-r", "language", "--language", "en", "-q", input=jsonl([row]))
    chinese = score("-r", "language", "--language", "zh", "-q", input=jsonl([row]))
    assert english.exit_code == chinese.exit_code == 0, english.stderr + chinese.stderr
    assert parse(english.stdout)[0]["rewards"]["language"] == 1.0
    assert parse(chinese.stdout)[0]["rewards"]["language"] == 0.0


@pytest.mark.parametrize(("args", "code", "message"), [
    (["-r", "acuracy"], 1, "unknown reward 'acuracy'"),
    (["--reward-arg", "accuracy"], 2, "NAME.KEY=VALUE"),
    (["--reward-arg", "accuracy.speed=3"], 1, "reward 'accuracy' has no parameter 'speed'"),
    (["--reward-arg", "format.strict=1"], 0, ""),
    (["--language", "en"], 2, "add -r language"),
    (["--timeout", "0"], 2, "--timeout"),
    (["--resume"], 2, "--resume needs -o FILE"),
])
def test_usage_and_reward_errors(args, code, message):
    result = score(*args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    if code:
        assert result.stdout == ""


def test_a_record_without_completion_names_file_and_line_and_leaves_no_file(tmp_path):
    src = tmp_path / "rollouts.jsonl"
    src.write_text(jsonl([ROWS[0], {"id": "x", "answer": "4"}, ROWS[1]]))
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["score", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert f"{src}:2: no 'completion' field" in result.stderr
    assert "answer, id" in result.stderr  # the hint names the fields the record has
    assert not out.exists() and not (tmp_path / "scored.jsonl.part").exists()


def test_skip_invalid_skips_and_counts_malformed_lines():
    text = jsonl(ROWS[:1]) + "{not json\n" + jsonl(ROWS[1:2])
    strict = score(input=text)
    assert strict.exit_code == 1 and "<stdin>:2: invalid JSON" in strict.stderr
    lenient = score("--skip-invalid", input=text)
    assert lenient.exit_code == 0, lenient.stderr
    assert len(parse(lenient.stdout)) == 2
    assert "1 invalid lines skipped" in lenient.stderr


def test_resume_keeps_complete_records_and_does_the_rest(tmp_path):
    rows = [{"id": str(i), "completion": f"<answer>{i}</answer>", "answer": str(i % 3)} for i in range(7)]
    src = tmp_path / "in.jsonl"
    src.write_text(jsonl(rows))
    full = tmp_path / "full.jsonl"
    assert runner.invoke(app, ["score", str(src), "-o", str(full)]).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 7
    cut = tmp_path / "cut.jsonl.part"  # an interrupted run: 3 complete lines and half a line
    cut.write_text("".join(lines[:3]) + lines[3][:20])
    result = runner.invoke(app, ["score", str(src), "-o", str(tmp_path / "cut.jsonl"), "--resume"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cut.jsonl").read_text() == full.read_text()
    assert "scored 4 completions" in result.stderr and "3 already done" in result.stderr


def test_rollout_then_score_on_the_tiny_model(tiny_model):
    prompts = [{"id": "p1", "prompt": "What is 2 + 2?", "answer": "4"},
               {"id": "p2", "prompt": "What is 3 * 3?", "answer": "9"}]
    rolled = runner.invoke(app, ["rollout", "-m", tiny_model, "-n", "2", "--max-new-tokens", "8", "-q"],
                           input=jsonl(prompts))
    assert rolled.exit_code == 0, rolled.stderr
    result = runner.invoke(app, ["score", "-r", "accuracy", "-r", "format", "-r", "tags"], input=rolled.stdout)
    assert result.exit_code == 0, result.stderr
    out = parse(result.stdout)
    assert [(r["id"], r["sample"]) for r in out] == [("p1", 0), ("p1", 1), ("p2", 0), ("p2", 1)]
    for r, before in zip(out, parse(rolled.stdout)):
        assert {k: r[k] for k in before} == before  # every rollout key passes through
        assert set(r["rewards"]) == {"accuracy", "format", "tags"}
        assert all(isinstance(v, float) for v in r["rewards"].values())  # gibberish: wrong, never null
        assert isinstance(r["reward"], float)
    assert "scored 4 completions (0 unscorable, 0 timed out)" in result.stderr


def _score_process(stdin, *args):
    # Ctrl-C must reach it even where the suite itself runs with SIGINT ignored (a background job, nohup)
    return subprocess.Popen([sys.executable, "-m", "r1cli", "score", *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _gone(pids, within=5.0):
    deadline = time.monotonic() + within
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    return alive == []


def test_a_reader_that_stops_early_stops_the_workers(tmp_path):
    src = tmp_path / "many.jsonl"
    src.write_text(jsonl([{"completion": OK, "answer": str(i % 9)} for i in range(5000)]))
    with open(src, "rb") as stdin:
        proc = _score_process(stdin, "--workers", "2")  # like `r1 score many.jsonl | head -1`
    try:
        first = proc.stdout.readline()
        workers = [c.pid for c in psutil.Process(proc.pid).children()]
        proc.stdout.close()
        proc.wait(20)
    finally:
        proc.kill()
        proc.wait()
    assert json.loads(first)["rewards"]["format"] == 1.0
    assert len(workers) == 2
    assert _gone(workers)
    assert b"Traceback" not in proc.stderr.read()


def test_ctrl_c_stops_the_workers_and_exits_130():
    proc = _score_process(subprocess.PIPE, "--workers", "2", "-r", "format")
    try:
        proc.stdin.write(jsonl(ROWS[:1]).encode())
        proc.stdin.flush()  # stdin stays open: the command waits for more input
        assert json.loads(proc.stdout.readline())["rewards"] == {"format": 1.0}  # streamed before the input ends
        workers = [c.pid for c in psutil.Process(proc.pid).children()]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(20)
    finally:
        proc.kill()
        proc.wait()
    assert code == 130
    assert len(workers) == 2 and _gone(workers)
    assert b"Interrupted." in proc.stderr.read()
