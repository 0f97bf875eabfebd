"""Say when a GRPO run has no learning signal.

When every group's completions get the same reward, every advantage is 0: the policy gradient
is 0 and the step only moves the weights through the KL term. TRL logs this as
`frac_reward_zero_std` = 1.0 but says nothing; a SmolLM2 run with accuracy + format logged
reward 0, frac_reward_zero_std 1.0 and grad_norm 0 at every step. After `STALL_STEPS` such
logged steps in a row, r1 prints one warning with the likely causes and fixes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

STALL_STEPS = 5  # consecutive steps with frac_reward_zero_std = 1.0 before the warning

STALL_MESSAGE = (
    "Warning: for {steps} steps in a row every group's rewards were equal (frac_reward_zero_std = 1.0, "
    "mean reward {reward}): the advantages are 0 and the policy does not learn. Likely causes and fixes: "
    "the completions never match the format (add the graded `tags` reward, or --prefill '<think>' so the "
    "model starts in the template); the task is too hard or too easy for the model (easier or harder "
    "prompts); too few samples per prompt to see a difference (raise --num-generations); or add "
    "--dynamic-sampling to drop uninformative groups and sample new prompts."
)


class StallWatch:
    """Counts consecutive stalled steps; `update(logs)` returns the warning once, at the N-th.

    >>> watch = StallWatch(steps=2)
    >>> [watch.update({"frac_reward_zero_std": v, "reward": 0.0}) is not None for v in (1.0, 0.5, 1.0, 1.0, 1.0)]
    [False, False, False, True, False]
    """

    def __init__(self, steps: int = STALL_STEPS) -> None:
        self.steps = steps
        self.run = 0
        self.warned = False

    def update(self, logs: Mapping[str, Any]) -> str | None:
        value = logs.get("frac_reward_zero_std")
        if not isinstance(value, (int, float)):
            return None
        self.run = self.run + 1 if value >= 1.0 - 1e-9 else 0
        if self.warned or self.run < self.steps:
            return None
        self.warned = True
        reward = logs.get("reward")
        return STALL_MESSAGE.format(steps=self.run,
                                    reward=f"{reward:.3g}" if isinstance(reward, (int, float)) else "unknown")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stall_callback(steps: int = STALL_STEPS, warn: Callable[[str], None] = _stderr) -> Any:
    """A TrainerCallback that warns once (rank 0, on stderr) when the run stalls."""
    from transformers import TrainerCallback

    watch = StallWatch(steps)

    class StallCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if not logs or "train_runtime" in logs or not state.is_world_process_zero:
                return
            message = watch.update(logs)
            if message:
                warn(message)

    return StallCallback()
