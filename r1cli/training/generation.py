"""GRPO generation through r1's `hf` engine: TRL's `rollout_func` over the trainer's own policy.

TRL's GRPOTrainer generates on CPU (and on GPU without vLLM) with one batched `model.generate`,
which keeps every row until the longest is done. r1's HFEngine drops finished rows from the batch
and its KV cache and samples each row from its own seeded generator; on SmolLM2-135M it measured
1.47-1.96x TRL's generation throughput (16 prompts x 4 samples x 128 tokens, fp32 / bf16).
`R1Rollout` hands that engine to TRL as `rollout_func`:

- it generates with the trainer's policy object itself (no copy: the weights of this step),
  in eval mode under `inference_mode`, and puts the model back in train mode afterwards;
- in bf16 autocast where the device is fast at it (a GPU, or a CPU with AVX512-BF16/AMX, as
  the engine decides), leaving the fp32 master weights untouched;
- prompts are tokenised by the trainer itself, so both generation paths feed the model the
  same ids; completions end at EOS or at a stop string (`--stop`), as in `r1 rollout`;
- each completion has its own seed, from (run seed, step, process, prompt, sample index);
- it returns the sampled tokens' log-probs under the sampling distribution (after
  temperature, top-k and top-p), which TRL's importance-sampling options read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from r1cli.engines import Completion, SamplingParams
from r1cli.engines.hf import HFEngine, HFOptions, cpu_has_fast_bf16
from r1cli.rollout import think_close

GENERATIONS = ("r1", "trl")

@dataclass(frozen=True)
class TokenCompletion(Completion):
    """A completion with the token ids the model generated (through EOS or the stop string) and
    each token's sampling log-prob."""

    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()


class PolicyEngine(HFEngine):
    """HFEngine over a model object already in memory (a trainer's policy), not loaded by name."""

    def __init__(self, model: Any, tokenizer: Any, options: HFOptions | Any = None, *, bf16: bool | None = None,
                 **values: Any) -> None:
        """`options`: the hf engine's (HFOptions or a mapping; keywords add to it): `batch_size` rows
        per decode batch, `dtype` the autocast dtype of an fp32 policy (default bf16 where the device
        is fast at it, as HFEngine decides). `bf16`, when given, decides autocast instead."""
        import inspect

        import torch

        opts = HFOptions.of(options, **values)
        self.options = opts
        self.model_name = getattr(model.config, "_name_or_path", "policy")
        self.batch_size = opts.batch_size
        self.model = model
        self.tokenizer = tokenizer
        param = next(model.parameters())
        self.device = str(param.device)
        fast_bf16 = param.device.type == "cuda" or cpu_has_fast_bf16()
        wanted = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}.get(
            opts.dtype or "auto", torch.bfloat16 if fast_bf16 else None)
        if bf16 is not None:
            wanted = torch.bfloat16 if bf16 else None
        self.autocast_dtype = wanted if param.dtype == torch.float32 else None  # a bf16 policy runs as it is
        self.autocast = self.autocast_dtype is not None
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(tokenizer.eos_token_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        # a PEFT model's forward takes **kwargs: read the keyword names from the model it wraps
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        forward_params = inspect.signature(base.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward_params
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
        self._rows: list[list[int]] = []

    def _forward(self, input_ids: Any, attention: Any, positions: Any, cache: Any, *, prefill: bool) -> Any:
        import torch

        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        context = torch.autocast(kind, dtype=self.autocast_dtype) if self.autocast else nullcontext()
        with context:
            return super()._forward(input_ids, attention, positions, cache, prefill=prefill)

    def _finish(self, tokens: list[int], params: SamplingParams) -> Completion:
        self._rows.append(tokens)
        return super()._finish(tokens, params)

    def _generate_batch(self, ids: list[list[int]], seeds: list[int], params: SamplingParams) -> list[Completion]:
        self._rows = []
        done = super()._generate_batch(ids, seeds, params)
        out = []
        for completion, tokens, logprobs in zip(done, self._rows, self.last_logprobs):
            n = completion.completion_tokens
            out.append(TokenCompletion(text=completion.text, finish_reason=completion.finish_reason,
                                       completion_tokens=n, token_ids=tuple(tokens[:n]),
                                       logprobs=tuple(logprobs[:n])))
        return out


def prompt_key(prompt: Any) -> str:
    """A stable key of a prompt (text or chat messages) for per-sample seeds.

    >>> prompt_key("2 + 2?") == prompt_key("2 + 2?"), prompt_key("a") == prompt_key("b")
    (True, False)
    """
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sample_keys(prompts: Sequence[Any], *, step: int, process: int) -> list[str]:
    """One seed key per completion: TRL repeats each prompt once per generation, so the n-th copy
    of a prompt in this process's batch is its sample n.

    >>> sample_keys(["a", "a", "b", "a"], step=3, process=0)[1].endswith("/1")
    True
    >>> len(set(sample_keys(["a", "a"], step=3, process=0) + sample_keys(["a", "a"], step=3, process=1)))
    4
    """
    seen: dict[str, int] = {}
    keys = []
    for prompt in prompts:
        key = prompt_key(prompt)
        index = seen.get(key, 0)
        seen[key] = index + 1
        keys.append(f"{step}/{process}/{key}/{index}")
    return keys


class R1Rollout:
    """TRL's `rollout_func`: `rollout(prompts, trainer)` → prompt ids, completion ids, log-probs."""

    def __init__(self, *, stop: Sequence[str] = (), options: HFOptions | Any = None, bf16: bool | None = None,
                 think_budget: int | None = None, answer_budget: int | None = None,
                 template: str | None = None) -> None:
        self.stop = tuple(stop)
        self.think_budget = think_budget  # budget forcing (s1): the engine closes the think block itself
        self.answer_budget = answer_budget  # tokens after the think block
        self.template = template
        self.options = HFOptions.of(options)  # the hf engine's: --engine-batch-size, --dtype
        self.bf16 = bf16
        self.engine: PolicyEngine | None = None
        self.seconds = 0.0

    def params(self, args: Any) -> SamplingParams:
        """TRL's sampling settings; the step and sample index enter each completion's seed through its key."""
        return SamplingParams(n=1, max_new_tokens=args.max_completion_length, temperature=args.temperature,
                              top_p=args.top_p, top_k=args.top_k or 0, seed=args.seed, stop=self.stop,
                              think_budget=self.think_budget, answer_budget=self.answer_budget,
                              think_close=think_close(self.template or "chat") if self.think_budget else None)

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        import time

        import torch
        from trl.models import unwrap_model_for_generation

        start = time.perf_counter()
        args = trainer.args
        prompt_ids = [list(map(int, ids)) for ids in trainer._tokenize_prompts(prompts)[0]]  # TRL's own prompt ids
        step = trainer.state.global_step
        keys = sample_keys(prompts, step=step, process=trainer.accelerator.process_index)
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=args.ds3_gather_for_generation) as model:
            if self.engine is None or self.engine.model is not model:
                self.engine = PolicyEngine(model, trainer.processing_class, self.options, bf16=self.bf16)
            was_training = model.training
            model.eval()  # no dropout, and no gradient checkpointing: the KV cache is used
            try:
                with torch.inference_mode():
                    generations = self.engine.generate_ids(prompt_ids, self.params(args), keys=keys)
            finally:
                if was_training:
                    model.train()
        completions = [g.completions[0] for g in generations]
        self.seconds += time.perf_counter() - start
        return {"prompt_ids": prompt_ids, "completion_ids": [list(c.token_ids) for c in completions],
                "logprobs": [list(c.logprobs) for c in completions]}


def resolve_generation(name: str | None, trl: Mapping[str, Any]) -> str:
    """`--generation`: r1 by default; trl where a TRL backend (vLLM, continuous batching) is chosen.

    >>> resolve_generation(None, {}), resolve_generation(None, {"use_vllm": True}), resolve_generation("trl", {})
    ('r1', 'trl', 'trl')
    """
    from r1cli.errors import R1Error

    backend = next((f for f in ("use_vllm", "use_transformers_continuous_batching") if trl.get(f)), None)
    if name is None:
        return "trl" if backend else "r1"
    if name not in GENERATIONS:
        raise R1Error(f"unknown --generation '{name}'. Choose from: {', '.join(GENERATIONS)}.")
    if name == "r1" and backend:
        raise R1Error(f"--generation r1 and {backend} both choose how GRPO generates",
                      hint="drop --generation r1 (vLLM and continuous batching are TRL's generation)")
    return name
