import pytest

from r1cli.engines import SamplingParams, get_engine, sample_seed
from r1cli.errors import EngineUnavailable


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, "a", 0) == sample_seed(0, "a", 0)
    seeds = {sample_seed(s, k, i) for s in (0, 1) for k in ("a", "b") for i in range(4)}
    assert len(seeds) == 16
    assert 0 <= sample_seed(0, "a", 0) < 2**63


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n": 0}, r"n \(samples"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1}, "temperature"),
     ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"top_k": -1}, "top_k")],
)
def test_sampling_params_validate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_unknown_engine_lists_choices():
    with pytest.raises(EngineUnavailable) as info:
        get_engine("nope", "tiny")
    assert "hf" in info.value.hint


def reference(logits, temperature, top_k, top_p):
    """The distribution transformers' warpers define: temperature, then top-k, then top-p."""
    import torch

    scaled = logits / temperature
    if top_k:
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, -1)
    sorted_p, order = torch.sort(probs, descending=True)
    keep = (sorted_p.cumsum(0) - sorted_p) < top_p
    out = torch.zeros_like(probs)
    out[order[keep]] = sorted_p[keep]
    return out / out.sum()


@pytest.mark.parametrize("top_k, top_p, candidates", [(0, 0.8, 1024), (0, 0.8, 5), (0, 1.0, 1024), (6, 0.9, 1024)])
def test_row_sampler_matches_the_reference_distribution(top_k, top_p, candidates):
    import torch

    from r1cli.engines.hf import _RowSampler

    torch.manual_seed(0)
    vocab = 40
    logits = torch.randn(1, vocab) * 0.8
    params = SamplingParams(temperature=0.7, top_k=top_k, top_p=top_p)
    sampler = _RowSampler([123], params, "cpu")
    sampler._CANDIDATES = candidates  # 5: the candidates hold < top_p, so the full-vocabulary path runs
    draws = 20000
    counts = torch.zeros(vocab)
    for _ in range(draws):
        counts[sampler.sample(logits)[0]] += 1
    want = reference(logits[0], 0.7, top_k, top_p)
    assert (counts / draws - want).abs().max() < 0.015
    assert counts[want == 0].sum() == 0  # never a token outside the nucleus


def test_rows_draw_from_their_own_generators():
    import torch

    from r1cli.engines.hf import _RowSampler

    params = SamplingParams(temperature=1.0, top_p=1.0)
    logits = torch.zeros(3, 1000)
    alone = [_RowSampler([s], params, "cpu").sample(logits[:1]).item() for s in (7, 8, 9)]
    together = _RowSampler([7, 8, 9], params, "cpu")
    assert together.sample(logits).tolist() == alone
    pruned = _RowSampler([7, 8, 9], params, "cpu")
    pruned.sample(logits)
    pruned.select([0, 2])  # row 8 finished
    second = together.sample(logits).tolist()
    assert pruned.sample(logits[:2]).tolist() == [second[0], second[2]]


def test_generate_counts_and_finish_reasons(tiny_model):
    from r1cli.engines.hf import HFEngine

    engine = HFEngine(tiny_model, batch_size=4)
    prompts = ["hello", [{"role": "user", "content": "hi there"}]]
    gens = engine.generate(prompts, SamplingParams(n=3, max_new_tokens=5, ignore_eos=True), keys=["x", "y"])
    assert [len(g.completions) for g in gens] == [3, 3]
    assert gens[0].prompt_tokens == len(engine.encode("hello"))
    assert gens[1].prompt_tokens == len(engine.encode(prompts[1])) > gens[0].prompt_tokens
    for g in gens:
        for c in g.completions:
            assert c.finish_reason == "length" and c.completion_tokens == 5


def test_finish_cuts_at_eos(tiny_model):
    from r1cli.engines.hf import HFEngine

    engine = HFEngine(tiny_model)
    eos = min(engine.eos_ids)
    hello = engine.tokenizer("hello world", add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_new_tokens=8)
    done = engine._finish(hello + [eos, eos, eos], params)
    assert (done.text, done.finish_reason, done.completion_tokens) == ("hello world", "stop", len(hello) + 1)
    cut = engine._finish(hello, params)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", len(hello))
    # a stop string ends the completion and stays in its text (vLLM's include_stop_str_in_output)
    stopped = engine._finish(hello + [eos], SamplingParams(max_new_tokens=8, stop=(" world",)))
    assert (stopped.text, stopped.finish_reason) == ("hello world", "stop")
    middle = engine._finish(hello, SamplingParams(max_new_tokens=8, stop=("ll", "hel")))
    assert (middle.text, middle.finish_reason) == ("hel", "stop")  # the stop string that ends first


def test_a_final_assistant_message_is_continued_not_closed(tiny_model):
    from r1cli.engines.hf import HFEngine

    engine = HFEngine(tiny_model)
    user = [{"role": "system", "content": ""}, {"role": "user", "content": "2 + 3?"}]
    opened = engine.tokenizer.decode(engine.encode(user))
    prefilled = engine.tokenizer.decode(engine.encode([*user, {"role": "assistant", "content": "<think>"}]))
    assert prefilled.startswith(opened)  # the generation prompt, then the prefill: no end-of-turn after it
    assert prefilled.endswith("<think>")


@pytest.mark.parametrize("n, prompts", [(4, ["hello", "a longer prompt here"]), (3, ["same", "same", "other"]),
                                        (1, ["one", "two"])])
def test_samples_of_a_prompt_share_its_prefill(tiny_model, monkeypatch, n, prompts):
    """Each distinct prompt of a batch is prefilled once and its cache copied to its samples; the
    completions and their log-probs are those of a prefill per row."""
    from r1cli.engines import hf
    from r1cli.engines.hf import HFEngine

    engine = HFEngine(tiny_model, batch_size=16)
    prefilled = []
    forward = engine._forward

    def spy(input_ids, attention, positions, cache, *, prefill):
        if prefill:
            prefilled.append(input_ids.size(0))
        return forward(input_ids, attention, positions, cache, prefill=prefill)

    monkeypatch.setattr(engine, "_forward", spy)
    params = SamplingParams(n=n, max_new_tokens=6, temperature=0.8, seed=3)
    keys = [str(i) for i in range(len(prompts))]

    def run():
        gens = engine.generate(prompts, params, keys=keys)
        return [[c.text for c in g.completions] for g in gens], list(engine.last_logprobs)

    shared = run()
    assert prefilled == [len(set(prompts))]
    monkeypatch.setattr(hf, "_distinct", lambda ids: (list(range(len(ids))), list(range(len(ids)))))
    prefilled.clear()
    alone = run()
    assert prefilled == [len(prompts) * n]
    assert shared[0] == alone[0]
    for a, b in zip(shared[1], alone[1]):
        assert a == pytest.approx(b, abs=1e-4)
