"""The vllm engine: parameter mapping and output conversion with fake vLLM objects (vLLM needs a
CUDA GPU), the install hint where vLLM is missing, and a real run marked `gpu` + `vllm`."""

import json
import sys
import types
from collections import Counter
from types import SimpleNamespace
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from r1cli.cli import app
from r1cli.engines import SamplingParams, get_engine, sample_seed
from r1cli.engines.vllm import INSTALL_HINT, sampling_kwargs, to_completion, to_generations, vllm_dtype
from r1cli.errors import EngineUnavailable

runner = CliRunner()


def output(text="x", tokens=(1, 2), reason="stop"):
    return SimpleNamespace(text=text, token_ids=list(tokens), finish_reason=reason)


def request(prompt_ids, *outs):
    return SimpleNamespace(prompt_token_ids=list(prompt_ids), outputs=list(outs))


# ---- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize("params, seed, expected", [
    (SamplingParams(), 11, {"n": 1, "temperature": 0.6, "top_p": 0.95, "top_k": -1, "seed": 11, "max_tokens": 512,
                            "stop": None, "include_stop_str_in_output": False, "ignore_eos": False}),
    (SamplingParams(n=8, temperature=0.0, top_p=1.0, top_k=20, max_new_tokens=64, stop=("</answer>", "\n\n"),
                    ignore_eos=True),
     2**62, {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": 20, "seed": 2**62, "max_tokens": 64,
             "stop": ["</answer>", "\n\n"], "include_stop_str_in_output": True, "ignore_eos": True}),
])
def test_sampling_kwargs(params, seed, expected):
    assert sampling_kwargs(params, seed) == expected


@pytest.mark.parametrize("dtype, name", [(None, "auto"), ("auto", "auto"), ("bf16", "bfloat16"), ("BFloat16", "bfloat16"),
                                         ("fp16", "float16"), ("half", "float16"), ("float32", "float32")])
def test_vllm_dtype(dtype, name):
    assert vllm_dtype(dtype) == name


def test_vllm_dtype_refuses_unknown_names():
    with pytest.raises(EngineUnavailable, match="--dtype int4"):
        vllm_dtype("int4")


@pytest.mark.parametrize("out, expected", [
    (output("abc", (5, 6, 7), "stop"), ("abc", "stop", 3)),
    (output("abc", (5,) * 16, "length"), ("abc", "length", 16)),
    (output("", (), None), ("", "stop", 0)),
])
def test_to_completion(out, expected):
    c = to_completion(out)
    assert (c.text, c.finish_reason, c.completion_tokens) == expected


def test_an_aborted_request_is_an_error():
    with pytest.raises(EngineUnavailable, match="aborted"):
        to_completion(output(reason="abort"))


def test_to_generations_groups_n_requests_per_prompt():
    outs = [request([1, 2, 3], output("a0")), request([1, 2, 3], output("a1", reason="length")),
            request([9], output("b0")), request([9], output("b1"))]
    gens = to_generations(outs, 2)
    assert [g.prompt_tokens for g in gens] == [3, 1]
    assert [[c.text for c in g.completions] for g in gens] == [["a0", "a1"], ["b0", "b1"]]
    assert gens[0].completions[1].finish_reason == "length"
    with pytest.raises(EngineUnavailable, match="not a multiple"):
        to_generations(outs[:3], 2)
    with pytest.raises(EngineUnavailable, match="without outputs"):
        to_generations([request([1])], 1)


# ---- the engine class over a fake `vllm` module -------------------------------------------------


class FakeLLM:
    """Stands in for vllm.LLM: records calls; the text shows the prompt and the request's seed."""

    instances: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.chat_flags = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return SimpleNamespace(chat_template="{{ messages }}")

    def _answer(self, prompt, sp):
        reason = "length" if "long" in str(prompt) else "stop"
        return request(range(len(str(prompt))), output(f"{prompt}|{sp.seed}", range(sp.max_tokens), reason))

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append(("generate", prompts, sampling_params, use_tqdm))
        return [self._answer(p, sp) for p, sp in zip(prompts, sampling_params)]

    def chat(self, messages, sampling_params, use_tqdm=True, add_generation_prompt=True,
             continue_final_message=False):
        self.calls.append(("chat", messages, sampling_params, use_tqdm))
        self.chat_flags.append((add_generation_prompt, continue_final_message))
        return [self._answer(m[-1]["content"], sp) for m, sp in zip(messages, sampling_params)]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.instances.clear()
    return module


def test_engine_builds_the_llm_and_maps_requests(fake_vllm, tiny_model):
    eng = get_engine("vllm", tiny_model, tensor_parallel_size=2, gpu_memory_utilization=0.5, dtype="bf16")
    (llm,) = FakeLLM.instances
    assert llm.kwargs == {"model": tiny_model, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
                          "dtype": "bfloat16", "seed": 0}
    assert eng.has_chat_template() and eng.model_name == tiny_model and eng.batch_size == 512
    params = SamplingParams(n=2, seed=3, max_new_tokens=4, stop=("STOP",))
    prompts = ["plain text", [{"role": "user", "content": "chat one"}], "long text"]
    gens = eng.generate(prompts, params, keys=["a", "b", "c"])
    kinds = [call[0] for call in llm.calls]
    assert kinds == ["generate", "chat"]  # text prompts in one call, chat prompts in another
    assert llm.calls[0][1] == ["plain text", "plain text", "long text", "long text"] and llm.calls[0][3] is False
    assert all(sp.n == 1 and sp.stop == ["STOP"] and sp.max_tokens == 4 for sp in llm.calls[0][2])
    for gen, key, text in zip(gens, "abc", ["plain text", "chat one", "long text"]):
        assert [c.text for c in gen.completions] == [f"{text}|{sample_seed(3, key, s)}" for s in range(2)]
        assert gen.prompt_tokens == len(text) and all(c.completion_tokens == 4 for c in gen.completions)
    assert [c.finish_reason for c in gens[2].completions] == ["length", "length"]


def test_rollout_with_the_vllm_engine_over_the_fake(fake_vllm, tiny_model):
    rows = [{"id": f"p{i}", "prompt": f"q{i}", "answer": "1"} for i in range(3)]
    result = runner.invoke(app, ["rollout", "--engine", "vllm", "-m", tiny_model, "-n", "2", "-q",
                                 "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.8"],
                           input="".join(json.dumps(r) + "\n" for r in rows))
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter((r["id"], r["sample"]) for r in out) == Counter((f"p{i}", s) for i in range(3) for s in range(2))
    assert FakeLLM.instances[0].kwargs["tensor_parallel_size"] == 2
    assert FakeLLM.instances[0].calls[0][0] == "chat"  # the model has a chat template: chat by default


# ---- without vLLM -------------------------------------------------------------------------------


def test_missing_vllm_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed, on any machine
    with pytest.raises(EngineUnavailable) as info:
        get_engine("vllm", "tiny")
    assert info.value.message == "vLLM is not installed" and info.value.hint == INSTALL_HINT
    result = runner.invoke(app, ["rollout", "--engine", "vllm", "-n", "1"], input='{"prompt": "hi"}\n')
    assert result.exit_code == 1
    assert "Error: vLLM is not installed" in result.stderr and "pip install 'r1cli[vllm]'" in result.stderr
    assert "Traceback" not in result.stderr


# ---- for real, on a CUDA GPU with vLLM installed ------------------------------------------------


@pytest.mark.gpu
@pytest.mark.vllm
def test_vllm_rollout_on_smollm2(smollm2, tmp_path):
    rows = [{"id": f"p{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(4)]
    args = ["rollout", "--engine", "vllm", "-m", smollm2, "-n", "3", "--max-new-tokens", "32", "-q",
            "--gpu-memory-utilization", "0.3", "--seed", "5"]
    data = "".join(json.dumps(r) + "\n" for r in rows)
    result = runner.invoke(app, args, input=data)
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter((r["id"], r["sample"]) for r in out) == Counter((f"p{i}", s) for i in range(4) for s in range(3))
    for r in out:
        assert r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 32
        assert r["prompt_tokens"] > 5 and r["model"] == smollm2
    assert any(r["completion"].strip() for r in out)


def test_a_prefilled_chat_prompt_is_continued(fake_vllm, tiny_model):
    eng = get_engine("vllm", tiny_model)
    chat = [{"role": "user", "content": "2+2?"}]
    gens = eng.generate([chat, [*chat, {"role": "assistant", "content": "<think>"}]], SamplingParams(max_new_tokens=4),
                        keys=["a", "b"])
    (llm,) = FakeLLM.instances
    assert llm.chat_flags == [(True, False), (False, True)]  # plain chat, then the prefilled one
    assert gens[1].completions[0].text.startswith("<think>|")
