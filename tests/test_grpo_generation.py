"""GRPO generation through r1's engine (TRL's rollout_func): ids, log-probs, seeds, and both paths.

The tiny random model: a few prompts × 2 generations × 8 tokens.
"""

import math

import pytest

from r1cli.errors import R1Error
from r1cli.training import grpo
from r1cli.training.generation import PolicyEngine, R1Rollout, resolve_generation, sample_keys
from r1cli.training.grpo import GRPOSettings

PROMPTS = [{"prompt": "Compute 2 + 3.", "answer": "5"}, {"prompt": "Compute 4 * 2.", "answer": "8"}]


def _model(tiny_model):
    from r1cli.models import load_model, load_tokenizer

    return load_model(tiny_model), load_tokenizer(tiny_model)


@pytest.mark.parametrize(("name", "trl", "expected"), [
    (None, {}, "r1"),
    ("trl", {}, "trl"),
    (None, {"use_vllm": True}, "trl"),
    (None, {"use_transformers_continuous_batching": True}, "trl"),
])
def test_resolve_generation(name, trl, expected):
    assert resolve_generation(name, trl) == expected


@pytest.mark.parametrize(("name", "trl", "message"), [
    ("vllm", {}, "unknown --generation 'vllm'"),
    ("r1", {"use_vllm": True}, "both choose how GRPO generates"),
])
def test_resolve_generation_refuses(name, trl, message):
    with pytest.raises(R1Error, match=message):
        resolve_generation(name, trl)


def test_sample_keys_differ_per_copy_step_and_process():
    keys = sample_keys(["a", "a", "b"], step=0, process=0)
    assert len(set(keys)) == 3
    assert sample_keys(["a"], step=1, process=0) != sample_keys(["a"], step=0, process=0)
    assert sample_keys(["a"], step=0, process=1) != sample_keys(["a"], step=0, process=0)


@pytest.mark.parametrize(("temperature", "top_p", "top_k"), [(1.0, 1.0, 0), (0.7, 1.0, 0), (1.0, 1.0, 5)])
def test_logprobs_are_the_sampling_distribution(tiny_model, temperature, top_p, top_k):
    """Each returned log-prob equals log softmax(logits / T) of the token drawn, renormalised over top-k."""
    import torch

    from r1cli.engines import SamplingParams

    model, tokenizer = _model(tiny_model)
    engine = PolicyEngine(model, tokenizer, bf16=False)
    ids = [tokenizer("Compute 2 + 3.")["input_ids"], tokenizer("Compute 17 * 4, then add 1.")["input_ids"]]
    params = SamplingParams(n=2, max_new_tokens=6, temperature=temperature, top_p=top_p, top_k=top_k, seed=3)
    generations = engine.generate_ids(ids, params, keys=["a", "b"])
    for prompt, generation in zip(ids, generations):
        for completion in generation.completions:
            assert len(completion.token_ids) == completion.completion_tokens == len(completion.logprobs) > 0
            full = torch.tensor([prompt + list(completion.token_ids)])
            with torch.no_grad():
                logits = model(full).logits[0, len(prompt) - 1:-1].float() / temperature
            if top_k:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion.token_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4), (completion, expected)


def test_greedy_logprobs_are_zero_and_ids_decode_to_the_text(tiny_model):
    from r1cli.engines import SamplingParams

    model, tokenizer = _model(tiny_model)
    engine = PolicyEngine(model, tokenizer, bf16=False)
    (generation,) = engine.generate_ids([tokenizer("Hello")["input_ids"]],
                                        SamplingParams(n=1, max_new_tokens=5, temperature=0.0))
    completion = generation.completions[0]
    assert completion.logprobs == (0.0,) * len(completion.token_ids)
    assert tokenizer.decode(completion.token_ids, skip_special_tokens=True) == completion.text


def test_stop_string_ends_the_completion_ids(tiny_model):
    """The ids end with the token that completed the stop string, as r1 rollout stops."""
    from r1cli.engines import SamplingParams

    model, tokenizer = _model(tiny_model)
    engine = PolicyEngine(model, tokenizer, bf16=False)
    free = engine.generate_ids([tokenizer("Hi")["input_ids"]], SamplingParams(n=1, max_new_tokens=8, seed=1))
    tokens = free[0].completions[0].token_ids
    stop = tokenizer.decode(tokens[2:4], skip_special_tokens=True)  # a string the model will produce
    if not stop.strip():
        pytest.skip("the random model produced no printable text here")
    stopped = engine.generate_ids([tokenizer("Hi")["input_ids"]],
                                  SamplingParams(n=1, max_new_tokens=8, seed=1, stop=(stop,)))[0].completions[0]
    assert stopped.finish_reason == "stop"
    assert len(stopped.token_ids) <= 4
    assert stop in tokenizer.decode(stopped.token_ids, skip_special_tokens=True)


def _trainer(tmp_path, tiny_model, generation, name):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(__import__("json").dumps(r) + "\n" for r in PROMPTS))
    settings = GRPOSettings.build({"model": tiny_model, "data": str(data), "reward": ("accuracy", "format"),
                                   "template": "r1-zero", "output": str(tmp_path / name), "max_steps": 1,
                                   "num_generations": 2, "batch_size": 4, "max_completion_length": 8,
                                   "generation": generation, "seed": 0})
    prepared = grpo.prepare(settings)
    args = grpo.grpo_config(settings)
    return grpo.build_trainer(settings, prepared, args)


def _record_rewards(trainer, seen):
    for i, fn in enumerate(list(trainer.reward_funcs)):
        def wrapped(prompts, completions, completion_ids, _fn=fn, **kwargs):
            rewards = _fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            seen.append({"prompts": list(prompts), "answers": list(kwargs["answer"]), "completions": list(completions),
                         "completion_ids": [list(c) for c in completion_ids], "rewards": list(rewards),
                         "again": list(_fn(prompts=prompts, completions=completions, completion_ids=completion_ids,
                                          **kwargs))})
            return rewards
        wrapped.__name__ = fn.__name__
        trainer.reward_funcs[i] = wrapped


def test_both_generation_paths_see_the_same_prompts_and_rewards(tmp_path, tiny_model):
    """r1's rollout_func and TRL's own generation hand the rewards the same prompts and columns; each
    path's rewards are those of its decoded completions; one optimisation step runs on each."""
    seen = {}
    for generation in ("r1", "trl"):
        trainer = _trainer(tmp_path, tiny_model, generation, generation)
        assert (trainer.rollout_func is not None) == (generation == "r1")
        seen[generation] = []
        _record_rewards(trainer, seen[generation])
        if generation == "r1":
            calls = []
            original = trainer.rollout_func

            def spy(prompts, trainer_, _original=original):
                out = _original(prompts, trainer_)
                calls.append((trainer_.model.training, out))
                return out
            trainer.rollout_func = spy
        trainer.train()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        assert losses and all(math.isfinite(x) for x in losses)
        if generation == "r1":
            assert calls and calls[0][0] is True  # the policy is back in train mode after generating
            out = calls[0][1]
            expected_ids = [list(map(int, x)) for x in trainer._tokenize_prompts(seen["r1"][0]["prompts"])[0]]
            assert out["prompt_ids"] == expected_ids  # the ids TRL's own path would feed the model
            assert [len(x) for x in out["logprobs"]] == [len(x) for x in out["completion_ids"]]
            assert all(lp <= 0 for row in out["logprobs"] for lp in row)
            # the engine generated with the trainer's own model object, not a copy
            assert original.engine.model is trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class
        for call in seen[generation]:
            assert call["rewards"] == call["again"]
            assert call["completions"] == tokenizer.batch_decode(call["completion_ids"], skip_special_tokens=True)
    for key in ("prompts", "answers"):
        assert [c[key] for c in seen["r1"]] == [c[key] for c in seen["trl"]]


@pytest.mark.parametrize("flag, field", [("--think-budget", "think_budget"), ("--answer-budget", "answer_budget")])
def test_budgets_need_r1_generation_and_reach_the_sampling(tmp_path, tiny_model, flag, field):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(__import__("json").dumps(r) + "\n" for r in PROMPTS))
    flags = {"model": tiny_model, "data": str(data), "reward": ("accuracy",), "output": str(tmp_path / "o"),
             field: 6}
    with pytest.raises(R1Error, match=f"{flag} needs r1 generation"):
        GRPOSettings.build({**flags, "generation": "trl"})
    with pytest.raises(R1Error, match=f"{flag} must be at least 1"):
        GRPOSettings.build({**flags, field: 0})
    settings = GRPOSettings.build(flags)
    rollout = R1Rollout(think_budget=settings.think_budget, answer_budget=settings.answer_budget, template="r1-zero")
    args = grpo.grpo_config(settings)
    assert getattr(rollout.params(args), field) == 6
