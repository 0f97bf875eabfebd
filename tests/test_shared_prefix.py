"""GRPO's shared-prompt forward: the same log-probs, entropies and gradients as TRL's row-per-completion
forward, for every layout of a batch, and TRL's own path wherever packing does not apply."""

from __future__ import annotations

import json
import math

import pytest

from r1cli.training import grpo, shared_prefix
from r1cli.training.grpo import GRPOSettings

PROMPTS = [{"prompt": "What is 2 + 3?", "answer": "5"},
           {"prompt": "Compute 7 times 8, then add 1 to the result.", "answer": "57"},
           {"prompt": "Is 9 prime?", "answer": "no"}]
WIDTH = 12

# (name, prompt of each row, completion tokens of each row): rows that share a prompt need not be
# adjacent, prompts differ in length (left padding), completions end early (right padding) or have
# no token in the loss (a masked truncated completion), and some prompts have a single completion
LAYOUTS = [
    ("two groups of four", [0, 0, 0, 0, 1, 1, 1, 1], [12, 5, 9, 1, 12, 12, 3, 7]),
    ("interleaved rows", [0, 1, 0, 1, 1, 0], [4, 12, 12, 2, 8, 6]),
    ("a single completion beside a group", [2, 0, 0, 0], [12, 3, 12, 8]),
    ("a completion with no token in the loss", [1, 1, 1], [0, 12, 6]),
    ("three groups of two", [0, 0, 1, 1, 2, 2], [1, 12, 7, 7, 12, 11]),
]


def _trainer(tmp_path, model, **flags):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS))
    settings = GRPOSettings.build({"model": model, "data": str(data), "reward": ("accuracy",), "template": "r1-zero",
                                   "output": str(tmp_path / "run"), "max_steps": 1, "num_generations": 2,
                                   "batch_size": 4, "max_completion_length": WIDTH, "seed": 0, **flags})
    prepared = grpo.prepare(settings)
    return grpo.build_trainer(settings, prepared, grpo.grpo_config(settings)), prepared


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, tiny_model):
    return _trainer(tmp_path_factory.mktemp("shared"), tiny_model)


def _batch(trainer, prepared, prompts, lengths):
    """TRL's layout: left-padded prompt ids, then WIDTH completion columns, right-padded."""
    import torch

    tokenizer = trainer.processing_class
    encoded = trainer._tokenize_prompts([prepared.rows[i]["prompt"] for i in range(len(PROMPTS))])[0]
    cols = max(len(p) for p in encoded)
    g = torch.Generator().manual_seed(len(prompts))
    ids = torch.full((len(prompts), cols + WIDTH), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, (p, n) in enumerate(zip(prompts, lengths)):
        ids[r, cols - len(encoded[p]):cols] = torch.tensor(encoded[p])
        mask[r, cols - len(encoded[p]):cols] = 1
        ids[r, cols:cols + n] = torch.randint(0, 2000, (n,), generator=g)
        mask[r, cols:cols + n] = 1
    return ids, mask


def _both(trainer, ids, mask, *, grad):
    """(log-probs, entropies, gradients) from TRL's forward, then from the shared-prefix one."""
    import torch

    model = trainer.model
    trl_path = type(trainer).__mro__[1]._get_per_token_logps_and_entropies
    out = []
    weights = torch.randn(ids.size(0), WIDTH, generator=torch.Generator().manual_seed(1))
    for fn in (lambda *a, **k: trl_path(trainer, *a, **k), trainer._get_per_token_logps_and_entropies):
        model.zero_grad()
        with torch.set_grad_enabled(grad):
            logps, entropies, _ = fn(model, ids, mask, WIDTH, compute_entropy=True)
        grads = None
        if grad:
            (logps * weights + entropies * weights.flip(0)).sum().backward()
            grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        out.append((logps.detach(), entropies.detach(), grads))
    return out


def test_the_trainer_is_the_shared_prefix_subclass(trainer):
    assert type(trainer[0]).__name__ == "SharedPrefixGRPOTrainer"


@pytest.mark.parametrize("name, prompts, lengths", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_same_logprobs_entropies_and_gradients_as_trl(trainer, name, prompts, lengths):
    import torch

    tr, prepared = trainer
    ids, mask = _batch(tr, prepared, prompts, lengths)
    cost = shared_prefix.costs(tr.model)
    assert shared_prefix.plan(ids, mask, WIDTH, per_token=cost[0], per_pair=cost[1]) is not None  # it packs
    (trl_lp, trl_ent, trl_grad), (lp, ent, grad) = _both(tr, ids, mask, grad=True)
    completion = mask[:, -WIDTH:].bool()
    assert lp.shape == trl_lp.shape == (len(prompts), WIDTH)
    torch.testing.assert_close(lp, trl_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, trl_ent, atol=1e-5, rtol=1e-5)
    assert not lp[~completion].any()  # padding and masked tokens: 0, as TRL returns them
    assert len(grad) == len(trl_grad)
    for a, b in zip(grad, trl_grad):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("prompts, lengths, why", [
    ([0, 1, 2], [12, 12, 12], "no two rows share a prompt"),
    ([0], [12], "a single row"),
])
def test_no_packing_where_nothing_is_shared(trainer, prompts, lengths, why):
    tr, prepared = trainer
    ids, mask = _batch(tr, prepared, prompts, lengths)
    cost = shared_prefix.costs(tr.model)
    assert shared_prefix.plan(ids, mask, WIDTH, per_token=cost[0], per_pair=cost[1]) is None, why


def test_no_packing_when_attention_would_cost_more_than_it_saves():
    """A one-token prompt shares nothing worth a dense mask over long completions."""
    import torch

    ids = torch.ones(4, 1 + 64, dtype=torch.long)
    assert shared_prefix.plan(ids, torch.ones_like(ids), 64, per_token=1e6, per_pair=1e6) is None


@pytest.mark.parametrize("attention", ["flash_attention_2", "flex_attention", "eager", None])
def test_attention_without_a_custom_mask_keeps_trls_forward(trainer, attention):
    tr, _ = trainer
    config = tr.model.config
    before = config._attn_implementation
    config._attn_implementation = attention
    try:
        assert shared_prefix.costs(tr.model) is None
    finally:
        config._attn_implementation = before


def test_vision_inputs_and_aux_losses_keep_trls_forward(trainer, monkeypatch):
    import torch

    tr, prepared = trainer
    ids, mask = _batch(tr, prepared, [0, 0], [12, 12])
    calls = []
    monkeypatch.setattr(type(tr), "_r1_packed_forward", lambda *a: calls.append(a) or (None, None))
    for kwargs in ({"compute_aux_loss": True}, {"token_type_ids": torch.zeros_like(ids)}):
        try:
            tr._get_per_token_logps_and_entropies(tr.model, ids, mask, WIDTH, **kwargs)
        except Exception:  # noqa: BLE001  # TRL's own path on a model without those inputs: not ours to run
            pass
        assert not calls, kwargs


def test_chunks_of_rows_pack_separately(trainer):
    """TRL passes batch_size for its no-grad forwards; each chunk is planned on its own."""
    import torch

    tr, prepared = trainer
    ids, mask = _batch(tr, prepared, [0, 0, 0, 1, 1, 1], [12, 4, 9, 12, 2, 12])
    (trl_lp, _, _), (lp, _, _) = _both(tr, ids, mask, grad=False)
    chunked, _, _ = tr._get_per_token_logps_and_entropies(tr.model, ids, mask, WIDTH, batch_size=4)
    torch.testing.assert_close(chunked, trl_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp, trl_lp, atol=1e-5, rtol=1e-5)


def test_one_training_step_logs_the_same_loss_with_and_without(tmp_path, tiny_model):
    """End to end through r1's trainer: same generations (seeded), so the same loss and gradient norm."""
    logged = {}
    for on in (True, False):
        tr, _ = _trainer(tmp_path / str(on), tiny_model, shared_prefix=on, beta=0.04)
        assert type(tr).__name__.startswith("SharedPrefix") == on
        assert tr.args.gradient_checkpointing  # the packed layout survives the recompute in the backward
        tr.train()
        logged[on] = next(e for e in tr.state.log_history if "loss" in e)
        tr.save_model(str(tmp_path / f"saved-{on}"))
        config = json.loads((tmp_path / f"saved-{on}" / "config.json").read_text())
        assert shared_prefix.NAME not in json.dumps(config)  # the saved model loads anywhere, with its own attention
    for key in ("loss", "grad_norm", "kl", "entropy"):
        assert math.isclose(logged[True][key], logged[False][key], rel_tol=1e-4, abs_tol=1e-6), key
