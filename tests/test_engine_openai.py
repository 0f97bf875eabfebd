"""The openai engine against an in-process fake server that injects faults, and for real
against `transformers serve` on 127.0.0.1."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.engines import SamplingParams, sample_seed
from r1cli.engines.openai import (
    START_HINT, OpenAIEngine, api_root, backoff_delay, parse_answer, parse_retry_after, request_body, retryable,
)
from r1cli.errors import EngineUnavailable

runner = CliRunner()


# ---- a fake OpenAI-compatible server -----------------------------------------------------------


class FakeServer:
    """Answers /v1/completions and /v1/chat/completions on 127.0.0.1.

    `faults` is consumed one entry per request: "429" (with `Retry-After: 2`), "500", "400",
    "401", "drop" (close the connection without an answer), "slow" (answer after 1 s); None or
    an exhausted list answers normally. The text of an answer is a function of the request's
    prompt and seed, so a sample's text shows which seed produced it.
    """

    def __init__(self, faults=(), usage=True, model="served-model", stops="keep"):
        self.stops = stops  # keep the stop string in the text, or cut it: "vllm" (naming it), "plain"
        self.faults = list(faults)
        self.usage = usage
        self.model = model
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append((self.path, body, dict(self.headers)))
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "slow":
                    time.sleep(1.0)
                if fault in ("429", "500", "400", "401"):
                    self.send(int(fault), {"error": {"message": f"injected {fault}"}},
                              {"Retry-After": "2"} if fault == "429" else {})
                    return
                self.send(200, server.answer(self.path, body))

            def send(self, status, data, headers=None):
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that gave up is not news
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, path, body):
        chat = path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        text = f"{prompt}|{body['seed']}"
        if "stop-test" in prompt:
            text += " then STOP and more"
        if "format-test" in prompt:
            text = " <think>2 + 2 = 4</think> <answer>4</answer> User: and more"
        reason = "length" if "long" in prompt else "stop"
        choice = {"index": 0, "finish_reason": reason}
        hits = sorted((text.find(s), s) for s in body.get("stop") or () if s in text)
        if hits:
            at, matched = hits[0]
            text = text[: at + len(matched)] if self.stops == "keep" else text[:at]
            choice["finish_reason"] = "stop"
            if self.stops == "vllm":
                choice["stop_reason"] = matched
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        data = {"id": "x", "model": self.model, "choices": [choice]}
        if self.usage:
            data["usage"] = {"prompt_tokens": len(prompt), "completion_tokens": len(text.split()),
                             "total_tokens": 0}
        return data

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def engine(server, *, waits=None, **kw):
    eng = OpenAIEngine(kw.pop("model", "m"), base_url=server.url, **kw)
    if waits is not None:  # record the backoff instead of sleeping it
        eng._wait = lambda seconds, abort: waits.append(seconds) or False
    return eng


def texts(generations):
    return [[c.text for c in g.completions] for g in generations]


# ---- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize("url, root", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
    ("http://localhost:8000/v1", "http://localhost:8000/v1"),
    ("https://api.example.com/v1/", "https://api.example.com/v1"),
    ("https://example.com/openai/v1", "https://example.com/openai/v1"),
])
def test_api_root(url, root):
    assert api_root(url) == root


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host/v1", "http://", ""])
def test_api_root_refuses_non_urls(url):
    with pytest.raises(EngineUnavailable, match="not an http"):
        api_root(url)


@pytest.mark.parametrize("value, seconds", [
    (None, None), ("", None), ("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("nan", None),
    ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=1445412480.0) == seconds


@pytest.mark.parametrize("attempt, retry_after, rand, delay", [
    (0, None, 0.0, 0.25), (0, None, 0.5, 0.375), (1, None, 0.0, 0.5), (4, None, 0.0, 4.0),
    (6, None, 0.999, 29.985), (20, None, 0.0, 15.0),  # capped at 30 s
    (0, 2.0, 0.9, 2.0), (5, 0.0, 0.9, 0.0), (0, 9999.0, 0.0, 300.0),  # Retry-After wins, capped at 300 s
])
def test_backoff_delay(attempt, retry_after, rand, delay):
    assert backoff_delay(attempt, retry_after=retry_after, rand=rand) == pytest.approx(delay)


@pytest.mark.parametrize("status, retry", [(400, False), (401, False), (404, False), (422, False), (408, True),
                                           (409, True), (429, True), (500, True), (503, True)])
def test_retryable(status, retry):
    assert retryable(status) is retry


def test_a_prefilled_chat_prompt_asks_the_server_to_continue_it():
    chat = [{"role": "user", "content": "2+2?"}]
    _, plain = request_body(chat, SamplingParams(), 1, None)
    _, prefilled = request_body([*chat, {"role": "assistant", "content": "<think>"}], SamplingParams(), 1, None)
    assert "continue_final_message" not in plain
    assert prefilled["continue_final_message"] is True and prefilled["add_generation_prompt"] is False


def test_request_body_sends_only_what_is_set():
    path, body = request_body("2+2=", SamplingParams(max_new_tokens=7, temperature=0.6, top_p=0.9), 2**40 + 5, None)
    assert path == "/completions"
    assert body == {"prompt": "2+2=", "max_tokens": 7, "temperature": 0.6, "top_p": 0.9, "seed": 5}
    path, body = request_body([{"role": "user", "content": "hi"}],
                              SamplingParams(top_k=20, stop=("</answer>",), ignore_eos=True), 3, "Qwen/Q")
    assert path == "/chat/completions"
    assert body["model"] == "Qwen/Q" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["top_k"] == 20 and body["stop"] == ["</answer>"] and body["ignore_eos"] is True
    assert "n" not in body
    assert "include_stop_str_in_output" not in body  # strict servers refuse it; r1 restores the stop string itself


@pytest.mark.parametrize("data, chat, stop, expected", [
    ({"choices": [{"text": "abc", "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
     False, (), ("abc", "stop", 3, 1)),
    ({"choices": [{"text": "abc", "finish_reason": "length"}]}, False, (), ("abc", "length", None, None)),
    ({"choices": [{"text": "abc", "finish_reason": None}]}, False, (), ("abc", "stop", None, None)),
    ({"choices": [{"text": "abc", "finish_reason": "eos"}]}, False, (), ("abc", "stop", None, None)),
    # a server that leaves the stop string in (transformers serve): r1 cuts just after it, and
    # it is a stop, not a length
    ({"choices": [{"text": "a</answer>b", "finish_reason": "length"}]}, False, ("</answer>",),
     ("a</answer>", "stop", None, None)),
    ({"choices": [{"message": {"content": None}, "finish_reason": "stop"}]}, True, (), ("", "stop", None, None)),
    ({"choices": [{"message": {"content": "4", "reasoning_content": "2+2"}, "finish_reason": "stop"}]}, True, (),
     ("<think>\n2+2\n</think>\n4", "stop", None, None)),
    ({"choices": [{"text": "x"}], "usage": {"prompt_tokens": -1, "completion_tokens": True}}, False, (),
     ("x", "stop", None, None)),
])
def test_parse_answer(data, chat, stop, expected):
    a = parse_answer(data, chat=chat, stop=stop)
    assert (a.text, a.finish_reason, a.prompt_tokens, a.completion_tokens) == expected


A, U = "</answer>", "User:"


@pytest.mark.parametrize("choice, stop, text", [
    # vLLM names the match in stop_reason: the string, or null / a token id for EOS and stop tokens
    ({"finish_reason": "stop", "stop_reason": A}, (A, U), "<answer>4</answer>"),
    ({"finish_reason": "stop", "stop_reason": U}, (A, U), "<answer>4User:"),
    ({"finish_reason": "stop", "stop_reason": None}, (A,), "<answer>4"),
    ({"finish_reason": "stop", "stop_reason": 128001}, (A,), "<answer>4"),
    ({"finish_reason": "stop", "stop_reason": "not asked for"}, (A,), "<answer>4"),
    # SGLang: matched_stop
    ({"finish_reason": "stop", "matched_stop": A}, (A,), "<answer>4</answer>"),
    ({"finish_reason": "stop", "matched_stop": 2}, (A,), "<answer>4"),
    # TGI's finish reasons tell EOS from a stop sequence
    ({"finish_reason": "eos_token"}, (A,), "<answer>4"),
    ({"finish_reason": "stop_sequence"}, (A,), "<answer>4</answer>"),
    ({"finish_reason": "stop_sequence"}, (A, U), "<answer>4"),
    # a plain "stop" and nothing else (OpenAI, llama.cpp): one stop string is restored, several are not
    ({"finish_reason": "stop"}, (A,), "<answer>4</answer>"),
    ({"finish_reason": "stop"}, (A, U), "<answer>4"),
    ({"finish_reason": None}, (A,), "<answer>4"),
    # a length finish never met the stop string; no stop strings, nothing to restore
    ({"finish_reason": "length"}, (A,), "<answer>4"),
    ({"finish_reason": "stop"}, (), "<answer>4"),
])
@pytest.mark.parametrize("chat", [False, True])
def test_a_stop_string_the_server_cut_off_is_restored(choice, stop, text, chat):
    body = {"message": {"role": "assistant", "content": "<answer>4"}} if chat else {"text": "<answer>4"}
    a = parse_answer({"choices": [{**body, **choice}]}, chat=chat, stop=stop)
    assert a.text == text
    assert a.finish_reason == ("length" if choice["finish_reason"] == "length" else "stop")


@pytest.mark.parametrize("data", [{}, {"choices": []}, {"choices": [{"message": "hi"}]}, {"choices": [{"text": 3}]}])
def test_parse_answer_refuses_malformed(data):
    with pytest.raises(ValueError):
        parse_answer(data, chat="text" not in str(data))


# ---- the engine against the fake server ---------------------------------------------------------


def test_text_and_chat_prompts_one_request_per_sample():
    with FakeServer() as server:
        eng = engine(server)
        params = SamplingParams(n=3, seed=5, max_new_tokens=9)
        gens = eng.generate(["hello", [{"role": "user", "content": "hi"}]], params, keys=["a", "b"])
    paths = Counter(path for path, _, _ in server.requests)
    assert paths == {"/v1/completions": 3, "/v1/chat/completions": 3}
    for key, prompt, gen in (("a", "hello", gens[0]), ("b", "hi", gens[1])):
        seeds = [sample_seed(5, key, s) & 0x7FFF_FFFF for s in range(3)]
        assert [c.text for c in gen.completions] == [f"{prompt}|{seed}" for seed in seeds]
        assert gen.prompt_tokens == len(prompt)
        assert all(c.finish_reason == "stop" and c.completion_tokens == 1 for c in gen.completions)
    assert {body["max_tokens"] for _, body, _ in server.requests} == {9}
    assert {body["model"] for _, body, _ in server.requests} == {"m"}
    assert eng.model_name == "m" and eng.has_chat_template()


def test_output_does_not_depend_on_concurrency_or_batch():
    prompts = [f"p{i}" for i in range(12)]
    params = SamplingParams(n=2, seed=1)
    with FakeServer() as server:
        one = engine(server, concurrency=1).generate(prompts, params, keys=prompts)
        many = engine(server, concurrency=8).generate(prompts, params, keys=prompts)
        alone = engine(server, concurrency=3).generate(prompts[5:7], params, keys=prompts[5:7])
    assert texts(one) == texts(many)
    assert texts(alone) == texts(one)[5:7]


def test_429_500_and_dropped_connections_are_retried_with_backoff():
    waits = []
    with FakeServer(faults=["429", "500", "drop"]) as server:
        eng = engine(server, waits=waits, concurrency=1)
        gens = eng.generate(["q"], SamplingParams(n=2), keys=["k"])
    assert texts(gens) == [[f"q|{sample_seed(0, 'k', s) & 0x7FFF_FFFF}" for s in range(2)]]
    assert len(server.requests) == 5 and eng.retries == 3
    assert waits[0] == 2.0  # the 429's Retry-After
    assert 0.5 <= waits[1] <= 1.0 and 1.0 <= waits[2] <= 2.0  # then exponential backoff with jitter


def test_gives_up_after_max_retries_naming_the_url():
    waits = []
    with FakeServer(faults=["500"] * 10) as server:
        eng = engine(server, waits=waits, max_retries=2)
        with pytest.raises(EngineUnavailable) as info:
            eng.generate(["q"], SamplingParams(n=1))
    assert len(server.requests) == 3 and len(waits) == 2
    assert f"{server.url}/completions" in info.value.message
    assert "HTTP 500: injected 500" in info.value.message and "after 2 retries" in info.value.message
    assert "--resume" in info.value.hint


def test_unreachable_server_is_a_clear_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits = []
    eng = OpenAIEngine("m", base_url=f"http://127.0.0.1:{port}", max_retries=1)
    eng._wait = lambda s, abort: waits.append(s) or False
    with pytest.raises(EngineUnavailable) as info:
        eng.generate([[{"role": "user", "content": "hi"}]], SamplingParams(n=1))
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in info.value.message
    assert "ConnectError" in info.value.message and info.value.hint == START_HINT
    assert len(waits) == 1


def test_a_request_that_times_out_is_retried():
    with FakeServer(faults=["slow"]) as server:
        eng = engine(server, waits=[], request_timeout=0.3)
        gens = eng.generate(["q"], SamplingParams(n=1))
    assert len(server.requests) == 2 and eng.retries == 1
    assert gens[0].completions[0].text.startswith("q|")
    with FakeServer(faults=["slow"] * 3) as server:
        with pytest.raises(EngineUnavailable, match=r"no answer within 0.3 s \(--request-timeout\)"):
            engine(server, waits=[], request_timeout=0.3, max_retries=1).generate(["q"], SamplingParams(n=1))


def test_client_errors_fail_at_once_with_the_servers_message(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with FakeServer(faults=["401"]) as server:
        with pytest.raises(EngineUnavailable) as info:
            engine(server, waits=[], api_key_env="MY_KEY").generate(["q"], SamplingParams(n=1))
    assert len(server.requests) == 1
    assert "HTTP 401" in info.value.message and "injected 401" in info.value.message
    assert "$MY_KEY" in info.value.hint
    assert "sk-secret-123" not in info.value.message + info.value.hint
    assert server.requests[0][2]["Authorization"] == "Bearer sk-secret-123"


def test_first_failure_stops_the_other_requests():
    with FakeServer(faults=["400"]) as server:
        eng = engine(server, concurrency=1)
        with pytest.raises(EngineUnavailable, match="HTTP 400"):
            eng.generate([f"p{i}" for i in range(20)], SamplingParams(n=2))
        time.sleep(0.2)
        assert len(server.requests) == 1
        # the engine stays usable; the failed call's threads do not come back to life
        assert texts(eng.generate(["again"], SamplingParams(n=1), keys=["k"])) == [[f"again|{sample_seed(0, 'k', 0) & 0x7FFF_FFFF}"]]
        time.sleep(0.2)
    assert len(server.requests) == 2


def test_api_key_env_must_be_set(monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="NOT_SET_KEY is not set"):
        OpenAIEngine("m", base_url="http://127.0.0.1:1/v1", api_key_env="NOT_SET_KEY")


def test_default_key_is_openai_api_key_when_set(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    with FakeServer() as server:
        engine(server).generate(["q"], SamplingParams(n=1))
    assert server.requests[0][2]["Authorization"] == "Bearer sk-default"
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeServer() as server:
        engine(server).generate(["q"], SamplingParams(n=1))
    assert "Authorization" not in server.requests[0][2]


def test_stop_strings_and_finish_reasons():
    with FakeServer() as server:
        gens = engine(server).generate(["stop-test", "long one"], SamplingParams(n=1, stop=("STOP",)))
    assert gens[0].completions[0].text.endswith("then STOP") and gens[0].completions[0].finish_reason == "stop"
    assert gens[1].completions[0].finish_reason == "length"
    assert server.requests[0][1]["stop"] == ["STOP"]


def test_without_m_the_servers_model_name_is_recorded():
    with FakeServer(model="org/served") as server:
        eng = OpenAIEngine(None, base_url=server.url)
        eng.generate(["q"], SamplingParams(n=1))
    assert "model" not in server.requests[0][1]
    assert eng.model_name == "org/served"


def test_missing_usage_is_counted_with_the_models_tokenizer(tiny_model):
    from r1cli.models import load_tokenizer

    tok = load_tokenizer(tiny_model)
    with FakeServer(usage=False) as server:
        gen = engine(server, model=tiny_model).generate(["What is 2+2?"], SamplingParams(n=1, seed=4), keys=["k"])[0]
        with pytest.raises(EngineUnavailable, match="sends no token counts"):
            OpenAIEngine(None, base_url=server.url).generate(["q"], SamplingParams(n=1))
    assert gen.prompt_tokens == len(tok("What is 2+2?")["input_ids"])
    text = gen.completions[0].text
    assert gen.completions[0].completion_tokens == len(tok(text, add_special_tokens=False)["input_ids"])


# ---- through `r1 rollout` -----------------------------------------------------------------------


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records)


PROMPTS = [{"id": f"p{i}", "prompt": f"question {i}", "answer": str(i)} for i in range(10)]


def test_rollout_with_the_openai_engine():
    with FakeServer() as server:
        result = runner.invoke(app, ["rollout", "--engine", "openai", "--base-url", server.url, "-n", "2",
                                     "--concurrency", "4", "--template", "none", "--max-new-tokens", "5"],
                               input=jsonl(PROMPTS))
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter((r["id"], r["sample"]) for r in out) == Counter((p["id"], s) for p in PROMPTS for s in range(2))
    for a, b in zip(out[::2], out[1::2]):  # a prompt's samples are contiguous
        assert a["id"] == b["id"] and (a["sample"], b["sample"]) == (0, 1)
    r = out[0]
    assert r["completion"].startswith(r["prompt"] + "|") and r["model"] == "served-model"
    assert r["prompt_tokens"] == len(r["prompt"]) and r["finish_reason"] == "stop"
    assert {path for path, _, _ in server.requests} == {"/v1/completions"}
    assert "generated 20 completions for 10 prompts" in result.stderr


@pytest.mark.parametrize("stops", ["keep", "vllm", "plain"])
def test_a_stopped_r1_zero_answer_keeps_its_close_and_scores_format(stops):
    """`--stop </answer>`: the completion still ends with </answer>, whatever the server does with it."""
    with FakeServer(stops=stops) as server:
        result = runner.invoke(app, ["rollout", "--engine", "openai", "--base-url", server.url, "-n", "1", "-q",
                                     "--template", "r1-zero", "--stop", "</answer>"],
                               input=jsonl([{"id": "f", "prompt": "format-test", "answer": "4"}]))
    assert result.exit_code == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["completion"] == " <think>2 + 2 = 4</think> <answer>4</answer>"
    assert record["finish_reason"] == "stop"
    scored = runner.invoke(app, ["score", "-r", "format", "-r", "accuracy", "--workers", "0"], input=result.stdout)
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["rewards"] == {"format": 1.0, "accuracy": 1.0}


def test_rollout_chat_template_goes_to_the_chat_endpoint():
    with FakeServer() as server:
        result = runner.invoke(app, ["rollout", "--engine", "openai", "--base-url", server.url, "-n", "1", "-q",
                                     "--system", "Be brief."], input=jsonl(PROMPTS[:2]))
    assert result.exit_code == 0, result.stderr
    assert {path for path, _, _ in server.requests} == {"/v1/chat/completions"}  # chat is the default template
    assert server.requests[0][1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_rollout_resume_after_a_server_failure_is_exactly_once(tmp_path):
    out = tmp_path / "out.jsonl"
    args = ["rollout", "--engine", "openai", "--base-url", "", "-n", "2", "--template", "none", "--concurrency", "2",
            "--engine-batch-size", "4", "--max-retries", "0", "-q", "-o", str(out), "--resume"]
    with FakeServer(faults=[None] * 9 + ["500"]) as server:
        args[4] = server.url
        failed = runner.invoke(app, args, input=jsonl(PROMPTS))
    assert failed.exit_code == 1 and "HTTP 500" in failed.stderr
    part = tmp_path / "out.jsonl.part"
    kept = [json.loads(line) for line in part.read_text().splitlines()]
    assert 0 < len(kept) < 20
    with FakeServer() as server:
        args[4] = server.url
        again = runner.invoke(app, args, input=jsonl(PROMPTS))
    assert again.exit_code == 0, again.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter((r["id"], r["sample"]) for r in records) == Counter((p["id"], s) for p in PROMPTS for s in range(2))
    assert len(server.requests) == 20 - len(kept)  # only what was missing was asked again


def test_unknown_engine_lists_the_engines():
    result = runner.invoke(app, ["rollout", "--engine", "tgi"], input=jsonl(PROMPTS[:1]))
    assert result.exit_code == 1
    assert "unknown engine 'tgi'" in result.stderr and "hf, openai, vllm" in result.stderr


# ---- for real: `transformers serve` on 127.0.0.1 -------------------------------------------------

SERVING = all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn", "openai"))
needs_serving = pytest.mark.skipif(not SERVING, reason="needs transformers[serving] (pip install 'r1cli[serving]')")
R1 = [sys.executable, "-m", "r1cli"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """`transformers serve FOLDER` on 127.0.0.1:port as a child process, stopped by its PID."""

    def __init__(self, folder, port, log):
        exe = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
        self.proc = subprocess.Popen([exe, "serve", folder, "--host", "127.0.0.1", "--port", str(port),
                                      "--device", "cpu", "--dtype", "float32"],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.url = f"http://127.0.0.1:{port}/v1"
        import httpx

        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("transformers serve did not become healthy in 120 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@needs_serving
def test_rollout_through_transformers_serve(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(jsonl(PROMPTS[:4]))
    server = Serve(tiny_model, free_port(), open(tmp_path / "serve.log", "w"))
    try:
        for template, endpoint in (("chat", "chat"), ("none", "completions")):
            out = tmp_path / f"{template}.jsonl"
            proc = subprocess.run(R1 + ["rollout", str(prompts), "--engine", "openai", "--base-url", server.url,
                                        "-m", tiny_model, "-n", "2", "--max-new-tokens", "6", "--template", template,
                                        "--concurrency", "2", "-o", str(out)], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
            got = records(out)
            assert Counter((r["id"], r["sample"]) for r in got) == Counter(
                (p["id"], s) for p in PROMPTS[:4] for s in range(2))
            for r in got:
                assert r["model"] == tiny_model and isinstance(r["completion"], str)
                assert r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 6
                assert r["prompt_tokens"] > 1
            assert "generated 8 completions for 4 prompts" in proc.stderr, (endpoint, proc.stderr)
    finally:
        server.stop()
    assert server.proc.returncode is not None


@pytest.mark.slow
@needs_serving
def test_server_killed_mid_run_then_resume_loses_and_duplicates_nothing(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    many = [{"id": f"q{i}", "prompt": f"Count to {i}.", "answer": str(i)} for i in range(24)]
    prompts.write_text(jsonl(many))
    port = free_port()
    out, part = tmp_path / "out.jsonl", tmp_path / "out.jsonl.part"
    args = R1 + ["rollout", str(prompts), "--engine", "openai", "--base-url", f"http://127.0.0.1:{port}/v1",
                 "-n", "2", "--max-new-tokens", "16", "--template", "none", "--concurrency", "2",
                 "--engine-batch-size", "4", "--max-retries", "1", "-q", "-o", str(out), "--resume"]
    log = open(tmp_path / "serve.log", "w")
    server = Serve(tiny_model, port, log)
    try:
        run = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and (not part.exists() or len(part.read_text().splitlines()) < 4):
            time.sleep(0.05)
        server.stop(signal.SIGKILL)  # the server dies mid-run
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 1, stderr
        assert f"the server at http://127.0.0.1:{port}/v1/completions failed" in stderr
        assert part.exists() and not out.exists()
        kept = len(part.read_text().splitlines())
        assert 4 <= kept < 48
        server = Serve(tiny_model, port, log)  # restarted on the same port
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stop()
    got = Counter((r["id"], r["sample"]) for r in records(out))
    assert got == Counter((p["id"], s) for p in many for s in range(2))  # each exactly once
