"""Budget forcing (--think-budget, --min-think) in the hf engine, sweeps that share the prefix, the
records' think fields, and the openai engine's two-request path (fake server; transformers serve)."""

import json

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.engines import SamplingParams, generate_budgets, get_engine

runner = CliRunner()
OPEN_PROMPT = "Compute 2 + 3. Assistant: <think>"
CLOSE = "</think>\n<answer>"


@pytest.fixture(scope="module")
def eng(tiny_model):
    return get_engine("hf", tiny_model, dtype="float32")


@pytest.mark.parametrize("kwargs, message", [
    ({"think_budget": 0}, "think_budget"), ({"min_think": 0}, "min_think"),
    ({"think_budget": 4, "min_think": 8}, "more than think_budget"), ({"answer_budget": 0}, "answer_budget"),
])
def test_sampling_params_refuse_bad_budgets(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def close_ids(eng):
    return eng.tokenizer(CLOSE, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("budget", [1, 5, 12])
def test_budget_closes_the_think_block_at_exactly_n_tokens(eng, budget):
    params = SamplingParams(n=2, max_new_tokens=budget + 10, think_budget=budget, think_close=CLOSE, seed=3)
    rows = eng._decode([eng.encode(OPEN_PROMPT)] * 2, [1, 2], params)
    ids = close_ids(eng)
    for row in rows:
        assert row.tokens[budget:budget + len(ids)] == ids  # the close is fed right after N think tokens
        completion = eng._complete(row, params)
        assert completion.think_tokens == budget and completion.forced == "close"
        assert completion.answer_tokens == budget + 10 - budget - len(ids)
        assert completion.text.count("</think>") == 1


@pytest.mark.parametrize("budget, allowance", [(1, 1), (4, 3), (6, 9)])
def test_answer_budget_ends_the_answer_after_n_tokens(eng, budget, allowance):
    params = SamplingParams(n=2, max_new_tokens=60, think_budget=budget, think_close=CLOSE, answer_budget=allowance,
                            ignore_eos=True, seed=1)
    rows = eng._decode([eng.encode(OPEN_PROMPT)] * 2, [1, 2], params)
    for row in rows:
        c = eng._complete(row, params)
        assert (c.think_tokens, c.answer_tokens, c.forced) == (budget, allowance, "close")
        assert c.completion_tokens == budget + len(close_ids(eng)) + allowance and c.finish_reason == "length"


def test_answer_budget_counts_from_the_models_own_close(eng, monkeypatch):
    params = SamplingParams(max_new_tokens=40, temperature=0, answer_budget=5, ignore_eos=True)
    row, c = scripted_run(eng, monkeypatch, 3, params)
    tag = eng.tokenizer("</think>", add_special_tokens=False)["input_ids"]
    assert (c.think_tokens, c.answer_tokens, c.forced) == (3, 5, None)
    assert len(row.tokens) == 3 + len(tag) + 5 and c.finish_reason == "length"


def test_no_think_block_means_no_forcing(eng):
    params = SamplingParams(max_new_tokens=12, think_budget=2, think_close=CLOSE)
    (gen,) = eng.generate(["Compute 2 + 3. Assistant:"], params, keys=["k"])
    c = gen.completions[0]
    if "<think>" not in c.text:  # the random model did not open a block by itself
        assert (c.think_tokens, c.answer_tokens, c.forced) == (0, c.completion_tokens, None)


class Scripted:
    """Greedy decoding of the tiny model with chosen tokens forced at chosen decode steps (one row)."""

    def __init__(self, eng, script):
        self.eng, self.script, self.step = eng, script, 0
        self.forward = type(eng)._forward

    def __call__(self, input_ids, attention, positions, cache, *, prefill):
        logits = self.forward(self.eng, input_ids, attention, positions, cache, prefill=prefill)
        if self.step in self.script:
            logits[:] = -1e9
            logits[:, self.script[self.step]] = 1e9
        self.step += 1
        return logits


def scripted_run(eng, monkeypatch, at, params):
    tag = eng.tokenizer("</think>", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(eng, "_forward", Scripted(eng, {at + i: t for i, t in enumerate(tag)}))
    (row,) = eng._decode([eng.encode(OPEN_PROMPT)], [0], params)
    monkeypatch.undo()
    return row, eng._complete(row, params)


def test_min_think_replaces_an_early_close_by_wait(eng, monkeypatch):
    params = SamplingParams(max_new_tokens=24, temperature=0, min_think=10, think_close=CLOSE)
    row, c = scripted_run(eng, monkeypatch, 3, params)
    assert c.forced == "extend"
    assert "</think>" not in c.text and "Wait" in c.text
    wait = eng.tokenizer("Wait", add_special_tokens=False)["input_ids"]
    assert row.tokens[3:3 + len(wait)] == wait  # "Wait" took the tag's place, right where it began
    # the KV cache forgot the taken-back tag: decoding the same tokens from scratch continues alike
    prefix = eng.encode(OPEN_PROMPT) + row.tokens[:8]
    (again,) = eng._decode([prefix], [0], SamplingParams(max_new_tokens=4, temperature=0))
    assert again.tokens == row.tokens[8:12]


def test_a_close_after_min_think_is_kept(eng, monkeypatch):
    params = SamplingParams(max_new_tokens=24, temperature=0, min_think=4, think_close=CLOSE)
    _, c = scripted_run(eng, monkeypatch, 6, params)
    assert c.forced is None and c.think_tokens == 6 and "</think>" in c.text


def test_a_sweep_shares_the_prefix_and_decodes_once(eng, monkeypatch):
    prompts = [OPEN_PROMPT, "What is 7 * 6? Assistant: <think>"]
    params = SamplingParams(n=2, max_new_tokens=28, think_close=CLOSE, seed=5)
    calls = []
    forward = type(eng)._forward
    monkeypatch.setattr(eng, "_forward", lambda *a, **k: calls.append(1) or forward(eng, *a, **k))
    sweep = generate_budgets(eng, prompts, params, [4, 8, 16], keys=["a", "b"])
    assert len(calls) <= params.max_new_tokens  # one decode loop for all three budgets
    monkeypatch.undo()
    for i in range(len(prompts)):
        for s in range(params.n):
            longest = sweep[16][i].completions[s].text
            for b in (4, 8, 16):
                c = sweep[b][i].completions[s]
                assert c.think_tokens == b and c.forced == "close"
                think = c.text.split("</think>")[0]
                assert longest.startswith(think)  # budget b's thinking is a prefix of the largest budget's
                assert c.text[len(think):].startswith(CLOSE)
    single = eng.generate(prompts, SamplingParams(**{**params.__dict__, "think_budget": 16}), keys=["a", "b"])
    same = sum(single[i].completions[s] == sweep[16][i].completions[s] for i in range(2) for s in range(2))
    assert same >= 3  # fp32: a fork can change a batch's float rounding, and a near-tie flip a draw


def test_a_sweep_gives_every_budget_its_own_answer_budget(eng, monkeypatch):
    params = SamplingParams(n=2, max_new_tokens=80, think_close=CLOSE, answer_budget=4, ignore_eos=True, seed=5)
    calls = []
    forward = type(eng)._forward
    monkeypatch.setattr(eng, "_forward", lambda *a, **k: calls.append(1) or forward(eng, *a, **k))
    sweep = generate_budgets(eng, [OPEN_PROMPT], params, [2, 6, 12], keys=["a"])
    monkeypatch.undo()
    assert len(calls) <= 12 + len(close_ids(eng)) + 4  # the decode ends when the largest budget has answered
    for b in (2, 6, 12):
        for c in sweep[b][0].completions:
            assert (c.think_tokens, c.answer_tokens, c.finish_reason) == (b, 4, "length")


def test_rollout_records_carry_think_fields(tiny_model):
    row = {"id": "q", "prompt": "Compute 2 + 3.", "answer": "5"}
    result = runner.invoke(app, ["rollout", "-m", tiny_model, "--template", "r1-zero", "--prefill", "<think>",
                                 "-n", "2", "--max-new-tokens", "20", "--think-budget", "6", "--dtype", "float32"],
                           input=json.dumps(row) + "\n")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    for r in records:
        assert r["think_tokens"] == 6 and r["forced"] == "close" and r["answer_tokens"] > 0
        assert CLOSE in r["completion"]


def test_eval_sweep_reports_mean_think_tokens_per_budget(tiny_model, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Compute {i} + 1.", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    result = runner.invoke(app, ["eval", "-m", tiny_model, "--data", str(data), "--template", "r1-zero",
                                 "--prefill", "<think>", "-n", "2", "--max-new-tokens", "24",
                                 "--think-budget", "4,8", "--dtype", "float32", "--workers", "0",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(m["think_budget"], m["mean_think_tokens"]) for m in lines] == [(4, 4.0), (8, 8.0)]
    assert {m["benchmark"] for m in lines} == {str(data)} and lines[0]["data"].endswith("@think4")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    settings = results["settings"]
    assert settings["think_budget"] == [4, 8] and settings["dtype"] == "float32" and settings["seed"] == 0
    assert settings["model_revision"].startswith("sha256:") and settings["protocol"] is None
    assert {"r1cli", "torch", "transformers"} <= set(results["versions"])
    assert "think" in result.stderr and "avg@2" in result.stderr
    assert settings["answer_budget"] is None


def test_eval_answer_budget_reaches_every_budget_and_results(tiny_model, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"id": "q", "prompt": "Compute 1 + 1.", "answer": "2"}) + "\n")
    result = runner.invoke(app, ["eval", "-m", tiny_model, "--data", str(data), "--template", "r1-zero",
                                 "--prefill", "<think>", "-n", "2", "--max-new-tokens", "40", "--think-budget", "3,6",
                                 "--answer-budget", "2", "--dtype", "float32", "--workers", "0",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["settings"]["answer_budget"] == 2
    for path in (tmp_path / "out").glob("*.jsonl"):
        for r in map(json.loads, path.read_text().splitlines()):
            assert r["answer_tokens"] <= 2 and r["completion_tokens"] <= r["think_budget"] + 8 + 2


@pytest.mark.parametrize("args, message", [
    (["--think-budget", "8,x"], "not a list of token counts"),
    (["--think-budget", "8", "--min-think", "16"], "more than the smallest"),
])
def test_eval_refuses_bad_budgets(args, message, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    result = runner.invoke(app, ["eval", "-m", "tiny", "--data", str(data), *args])
    assert result.exit_code == 2 and message in result.stderr


# ---- openai: two requests ------------------------------------------------------------------------


class ScriptedServer:
    """An in-process completions endpoint answering one word per token, up to max_tokens."""

    def __init__(self, words):
        from tests.test_engine_openai import FakeServer

        self.words = words
        self.server = FakeServer()
        self.server.answer = self.answer

    def answer(self, path, body):
        done = body["prompt"].count(" w")  # words already written, continued from the prompt
        close = "</think>" in body["prompt"]
        out = self.words[done:done + body["max_tokens"]] if not close else ["ans"] * body["max_tokens"]
        reason = "length" if len(out) == body["max_tokens"] else "stop"
        return {"model": "m", "choices": [{"index": 0, "finish_reason": reason, "text": "".join(out)}],
                "usage": {"prompt_tokens": 3, "completion_tokens": len(out)}}


def test_openai_budget_is_two_requests(tiny_model):
    from r1cli.engines.openai import OpenAIEngine

    scripted = ScriptedServer([" w"] * 50)
    with scripted.server as server:
        eng = OpenAIEngine(tiny_model, base_url=server.url)
        (gen,) = eng.generate(["Q <think>"], SamplingParams(max_new_tokens=20, think_budget=6, think_close=CLOSE),
                              keys=["k"])
    bodies = [body for _, body, _ in server.requests]
    assert [b["max_tokens"] for b in bodies][0] == 6 and len(bodies) == 2
    assert bodies[1]["prompt"] == "Q <think>" + " w" * 6 + CLOSE  # continued from the forced close
    c = gen.completions[0]
    assert c.forced == "close" and c.think_tokens == 6 and c.text.startswith(" w" * 6 + CLOSE)


def test_openai_answer_budget_caps_the_second_request(tiny_model):
    from r1cli.engines.openai import OpenAIEngine

    scripted = ScriptedServer([" w"] * 50)
    with scripted.server as server:
        eng = OpenAIEngine(tiny_model, base_url=server.url)
        (gen,) = eng.generate(["Q <think>"], SamplingParams(max_new_tokens=30, think_budget=6, think_close=CLOSE,
                                                            answer_budget=5), keys=["k"])
    assert [b["max_tokens"] for _, b, _ in server.requests] == [6, 5]
    c = gen.completions[0]
    assert c.forced == "close" and c.finish_reason == "length" and c.text.endswith(CLOSE + "ans" * 5)


def test_openai_answer_budget_cuts_an_answer_the_first_request_ran_past(tiny_model):
    from r1cli.engines.openai import OpenAIEngine

    scripted = ScriptedServer([" w"] * 3 + ["</think>"] + [" a"] * 40)
    with scripted.server as server:
        eng = OpenAIEngine(tiny_model, base_url=server.url)
        (gen,) = eng.generate(["Q <think>"], SamplingParams(max_new_tokens=30, answer_budget=4), keys=["k"])
    assert len(server.requests) == 1  # nothing was left to ask for
    c = gen.completions[0]
    answer = c.text.split("</think>", 1)[1]
    assert len(eng._tokenizer_or_fail()(answer, add_special_tokens=False)["input_ids"]) == 4
    assert c.finish_reason == "length" and c.forced is None


@pytest.mark.slow
def test_openai_budget_through_transformers_serve(tiny_model, tmp_path):
    import subprocess

    from tests.test_engine_openai import R1, SERVING, Serve, free_port

    if not SERVING:
        pytest.skip("needs transformers[serving]")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q", "prompt": "Compute 2 + 3. <think>", "answer": "5"}) + "\n")
    server = Serve(tiny_model, free_port(), open(tmp_path / "serve.log", "w"))
    try:
        out = tmp_path / "out.jsonl"
        proc = subprocess.run(R1 + ["rollout", str(prompts), "--engine", "openai", "--base-url", server.url,
                                    "-m", tiny_model, "-n", "2", "--max-new-tokens", "14", "--template", "none",
                                    "--think-budget", "4", "-o", str(out)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stop()
    for r in [json.loads(line) for line in out.read_text().splitlines()]:
        if "</think>" in r["completion"].split("</think>\n\n")[0]:
            continue  # the random model closed the block by itself within 4 tokens
        assert r["forced"] == "close" and r["think_tokens"] == 4 and "</think>\n\n" in r["completion"]
        assert r["completion_tokens"] <= 14


# ---- vllm: two generate calls (over the fake vllm module of test_engine_vllm) ---------------------


def test_vllm_budget_is_two_generate_calls(monkeypatch, tiny_model):
    import sys
    import types
    from types import SimpleNamespace

    from tests.test_engine_vllm import FakeLLM

    from r1cli.errors import EngineUnavailable
    from r1cli.models import load_tokenizer

    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    tokenizer = load_tokenizer(tiny_model)
    monkeypatch.setattr(FakeLLM, "get_tokenizer", lambda self: tokenizer)
    eng = get_engine("vllm", tiny_model)
    params = SamplingParams(max_new_tokens=40, think_budget=8, think_close=CLOSE)
    (gen,) = eng.generate(["a long prompt <think>"], params, keys=["k"])
    llm = FakeLLM.instances[-1]
    (_, first, sp1, _), (_, second, sp2, _) = llm.calls
    close_n = len(tokenizer(CLOSE, add_special_tokens=False)["input_ids"])
    assert sp1[0].max_tokens == 8 and second[0].endswith(CLOSE) and second[0].startswith(first[0])
    assert sp2[0].max_tokens == 40 - 8 - close_n
    c = gen.completions[0]
    assert c.forced == "close" and c.think_tokens == 8 and c.completion_tokens == 40 and CLOSE in c.text
    capped = SamplingParams(max_new_tokens=40, think_budget=8, think_close=CLOSE, answer_budget=3)
    eng.generate(["a long prompt <think>"], capped, keys=["k"])
    assert FakeLLM.instances[-1].calls[-1][2][0].max_tokens == 3
    with pytest.raises(EngineUnavailable, match="--min-think"):
        eng.generate(["x <think>"], SamplingParams(min_think=2), keys=["k"])
