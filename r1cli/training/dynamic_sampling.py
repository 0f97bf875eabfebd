"""Dynamic sampling (DAPO, Yu et al. 2025, §3.2): keep only groups whose rewards differ.

A group whose completions all get the same reward has zero advantage under GRPO: it adds
nothing but noise and cost to the step. DAPO drops such groups and samples more prompts until
the batch is full again. Here that happens inside TRL's own generation step: a `GRPOTrainer`
subclass overrides `_generate_and_score_completions`, calls TRL's implementation once per
round (each round samples and scores a fresh generation batch), and keeps the first
informative groups, so each optimisation step sees the batch size it was configured for. After
`max_rounds` rounds without enough informative groups, the batch is topped up with
uninformative groups (zero advantage) rather than failing.

The decisions are pure functions over rewards grouped by prompt, tested without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

DEFAULT_MAX_ROUNDS = 4


def informative_groups(rewards: Sequence[float | None], group_size: int, *, tol: float = 1e-6) -> list[bool]:
    """For each consecutive group of `group_size` rewards: do its scorable rewards differ?

    None and NaN are unscorable completions; a group with fewer than two scorable rewards
    carries no signal.

    >>> informative_groups([1.0, 1.0, 0.0, 1.0, None, 0.5, None, None], 2)
    [False, True, False, False]
    """
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out = []
    for start in range(0, len(rewards), group_size):
        scored = [r for r in rewards[start:start + group_size] if r is not None and not math.isnan(r)]
        out.append(len(scored) >= 2 and max(scored) - min(scored) > tol)
    return out


def fill_batch(rounds: Sequence[Sequence[bool]], needed: int) -> list[tuple[int, int]]:
    """Pick `needed` groups as (round, group): informative ones first, in order of generation,
    then, if there are too few, uninformative ones from the earliest rounds.

    >>> fill_batch([[False, True], [True, True]], 2)
    [(0, 1), (1, 0)]
    >>> fill_batch([[False, False], [False, True]], 2)
    [(1, 1), (0, 0)]
    """
    good = [(r, g) for r, flags in enumerate(rounds) for g, ok in enumerate(flags) if ok]
    if len(good) >= needed:
        return good[:needed]
    rest = [(r, g) for r, flags in enumerate(rounds) for g, ok in enumerate(flags) if not ok]
    return good + rest[:needed - len(good)]


def rank_slices(flags: Sequence[bool], ranks: int) -> list[list[bool]]:
    """Split global per-group flags into each process's share (groups never straddle processes).

    >>> rank_slices([True, False, False, True], 2)
    [[True, False], [False, True]]
    """
    if len(flags) % ranks:
        raise ValueError(f"{len(flags)} groups do not split evenly over {ranks} processes")
    per = len(flags) // ranks
    return [list(flags[i * per:(i + 1) * per]) for i in range(ranks)]


def refill_indices(seed: int, step: int, round_: int, dataset_size: int, prompts: int) -> list[int]:
    """Which prompts a refill round samples: a deterministic function of (seed, step, round),
    the same on every process and after a resume.

    >>> refill_indices(0, 3, 1, 10, 4) == refill_indices(0, 3, 1, 10, 4)
    True
    >>> len(refill_indices(0, 3, 1, 2, 4))
    4
    """
    import random

    rng = random.Random(f"r1-dynamic-sampling/{seed}/{step}/{round_}")
    if prompts <= dataset_size:
        return rng.sample(range(dataset_size), prompts)
    return [rng.randrange(dataset_size) for _ in range(prompts)]


# ---- the trainer -----------------------------------------------------------------------------

# Sequence tensors that TRL left-pads; every other 2-D tensor of a generation batch is right-padded.
_LEFT_PADDED = {"prompt_ids", "prompt_mask"}
_SUPPORTED = {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "num_items_in_batch",
              "old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps", "importance_sampling_ratio",
              "tool_mask"}


@lru_cache(maxsize=1)
def dynamic_sampling_trainer() -> type:
    """`GRPOTrainer` with dynamic sampling (built on first use: it imports TRL)."""
    import torch
    from trl import GRPOTrainer

    class DynamicSamplingGRPOTrainer(GRPOTrainer):
        r1_max_rounds: int = DEFAULT_MAX_ROUNDS

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001, ANN202
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._r1_rewards = rewards  # gathered over processes: (all completions, reward functions)
            return rewards

        def _generate_and_score_completions(self, inputs):  # noqa: ANN001, ANN202
            if not self.model.training:
                return super()._generate_and_score_completions(inputs)
            group = self.num_generations
            ranks, rank = self.accelerator.num_processes, self.accelerator.process_index
            if len(inputs) % group:
                raise ValueError(
                    f"dynamic sampling needs each process's generation batch ({len(inputs)} completions) to be a "
                    f"multiple of num_generations ({group}); change per_device_train_batch_size")
            needed = len(inputs) // group
            outputs, flags, totals = [], [], [0] * ranks
            batch = inputs
            for round_ in range(self.r1_max_rounds):
                outputs.append(super()._generate_and_score_completions(batch))
                per_rank = rank_slices(informative_groups(self._r1_total_rewards(), group), ranks)
                flags.append(per_rank[rank])
                totals = [t + sum(f) for t, f in zip(totals, per_rank)]
                if min(totals) >= needed:  # the same decision on every process: rewards are gathered
                    break
                if round_ + 1 < self.r1_max_rounds:
                    batch = self._r1_refill(len(inputs), ranks, rank, round_ + 1)
            picks = fill_batch(flags, needed)
            mode = "train"
            self._metrics[mode]["dynamic_sampling/rounds"].append(float(len(outputs)))
            self._metrics[mode]["dynamic_sampling/informative_frac"].append(
                sum(flags[r][g] for r, g in picks) / max(needed, 1))
            return self._r1_concat(outputs, picks, group)

        def _r1_total_rewards(self) -> list[float | None]:
            rewards = self._r1_rewards
            weights = self.reward_weights.to(rewards.device).unsqueeze(0)
            total = (rewards * weights).nansum(dim=1)
            total[torch.isnan(rewards).all(dim=1)] = torch.nan
            return [None if math.isnan(v) else v for v in total.tolist()]

        def _r1_refill(self, size: int, ranks: int, rank: int, round_: int) -> list[dict[str, Any]]:
            group = self.num_generations
            prompts = size * ranks // group
            indices = refill_indices(self.args.seed, self.state.global_step, round_, len(self.train_dataset), prompts)
            rows = [i for i in indices for _ in range(group)][rank * size:(rank + 1) * size]
            return [dict(self.train_dataset[i]) for i in rows]

        def _r1_concat(self, outputs: list[dict[str, Any]], picks: list[tuple[int, int]], group: int) -> dict[str, Any]:
            keys = set().union(*outputs)
            if keys - _SUPPORTED:
                raise ValueError(f"dynamic sampling does not support these inputs: {sorted(keys - _SUPPORTED)}")
            pad_id = self._tokenizer.pad_token_id
            merged: dict[str, Any] = {}
            for key in keys - {"num_items_in_batch"}:
                parts = []
                for r, g in picks:
                    rows = slice(g * group, (g + 1) * group)
                    parts.append(outputs[r][key][rows])
                merged[key] = _cat(parts, left=key in _LEFT_PADDED,
                                   value=pad_id if key.endswith("_ids") else 1 if key == "tool_mask" else 0)
            mask = merged["completion_mask"]
            if "tool_mask" in merged:
                mask = mask * merged["tool_mask"]
            merged["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
            return merged

    def _cat(parts: list[Any], *, left: bool, value: float) -> Any:
        if parts[0].dim() == 1:
            return torch.cat(parts)
        width = max(p.size(1) for p in parts)
        padded = []
        for p in parts:
            extra = width - p.size(1)
            if extra:
                filler = p.new_full((p.size(0), extra, *p.shape[2:]), value)
                p = torch.cat([filler, p] if left else [p, filler], dim=1)
            padded.append(p)
        return torch.cat(padded)

    return DynamicSamplingGRPOTrainer
