"""The transformers engine: batched decoding with left padding, length-sorted batches, a KV
cache, and finished rows dropped from the batch.

`model.generate` keeps every row of a batch until the longest is done; with the long-tailed
lengths of reasoning rollouts most of that work is padding (a 32-row SmolLM2 batch measured
28% useful tokens). This engine runs its own decode loop over the model's forward pass and
removes a row from the batch and its KV cache as soon as it ends.

Each row samples from its own torch.Generator, seeded by (run seed, prompt key, sample index),
so a prompt's samples depend on the seed and the prompt, not on which prompts share its batch
(exactly so in fp32; in bf16 the rounding of a differently padded batch can flip a draw).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from r1cli.engines import Completion, Generation, Prompt, SamplingParams, sample_seed


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 decoding of a
    135M model measured 1.75x faster than fp32 on 2 cores; elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class HFEngine:
    name = "hf"

    def __init__(self, model: str, *, batch_size: int = 32, device: str | None = None,
                 dtype: str | None = None) -> None:
        import torch

        from r1cli.models import load_model, load_tokenizer, model_name

        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.model_name = model_name(model)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype in (None, "auto"):
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") or cpu_has_fast_bf16() else torch.float32
        else:
            torch_dtype = dtype
        self.tokenizer = load_tokenizer(model)
        self.model = load_model(model, dtype=torch_dtype, device=self.device)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    # -- prompts ---------------------------------------------------------------------------

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt: raw text as is, chat messages through the chat template."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        # a final assistant message is a prefill (`--prefill`): continue it instead of closing it
        prefilled = prompt[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=not prefilled,
                                                  continue_final_message=prefilled, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *,
                 keys: Sequence[str] | None = None) -> list[Generation]:
        encoded = [self.encode(p) for p in prompts]
        return self.generate_ids(encoded, params, keys=keys)

    def generate_ids(self, encoded: Sequence[list[int]], params: SamplingParams, *,
                     keys: Sequence[str] | None = None) -> list[Generation]:
        if keys is None:
            keys = [str(i) for i in range(len(encoded))]
        # One row per (prompt, sample); rows sorted by prompt length so a batch pads little.
        rows = [(i, s) for i in range(len(encoded)) for s in range(params.n)]
        rows.sort(key=lambda r: len(encoded[r[0]]))
        results: dict[tuple[int, int], Completion] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            ids = [encoded[i] for i, _ in batch]
            seeds = [sample_seed(params.seed, keys[i], s) for i, s in batch]
            for row, completion in zip(batch, self._generate_batch(ids, seeds, params)):
                results[row] = completion
        return [
            Generation(prompt_tokens=len(encoded[i]), completions=[results[(i, s)] for s in range(params.n)])
            for i in range(len(encoded))
        ]

    def _generate_batch(self, ids: list[list[int]], seeds: list[int], params: SamplingParams) -> list[Completion]:
        import torch
        from transformers import DynamicCache

        device = self.device
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):  # left padding: every row's next token lands in the last column
            input_ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            attention[r, width - len(x) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        sampler = _RowSampler(seeds, params, device) if params.temperature > 0 else None
        banned = torch.tensor(sorted(self.eos_ids), device=device) if params.ignore_eos else None
        generated: list[list[int]] = [[] for _ in ids]
        active = list(range(len(ids)))  # original row of each row still in the batch
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            logits = self._forward(input_ids, attention, positions, cache, prefill=True)
            for step in range(params.max_new_tokens):
                if banned is not None:
                    logits[:, banned] = float("-inf")
                tokens = sampler.sample(logits) if sampler else logits.argmax(dim=-1)
                keep = []
                for j, (row, token) in enumerate(zip(active, tokens.tolist())):
                    generated[row].append(token)
                    if not self._ended(generated[row], params):
                        keep.append(j)
                if not keep or step == params.max_new_tokens - 1:
                    break
                if len(keep) < len(active):  # drop finished rows from the batch and the cache
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    attention, positions, tokens = attention[index], positions[index], tokens[index]
                    active = [active[j] for j in keep]
                    if sampler:
                        sampler.select(keep)
                attention = torch.cat([attention, attention.new_ones((len(active), 1))], dim=-1)
                positions = positions[:, -1:] + 1
                logits = self._forward(tokens.unsqueeze(-1), attention, positions, cache, prefill=False)
        return [self._finish(row, params) for row in generated]

    def _forward(self, input_ids: Any, attention: Any, positions: Any, cache: Any, *, prefill: bool) -> Any:
        """Next-token logits (fp32) of each row."""
        kwargs: dict[str, Any] = {}
        if prefill and self._keeps_logits:
            kwargs["logits_to_keep"] = 1  # the LM head on the last position only, not the whole prompt
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                         past_key_values=cache, use_cache=True, **kwargs)
        return out.logits[:, -1, :].float()

    def _ended(self, tokens: list[int], params: SamplingParams) -> bool:
        if tokens[-1] in self.eos_ids and not params.ignore_eos:
            return True
        if params.stop:
            # a stop string ends in the newest token: decoding a short tail is enough
            tail = self.tokenizer.decode(tokens[-self._stop_window(params) :], skip_special_tokens=True)
            return any(s in tail for s in params.stop)
        return False

    @staticmethod
    def _stop_window(params: SamplingParams) -> int:
        return max(len(s) for s in params.stop) + 4

    def _finish(self, tokens: list[int], params: SamplingParams) -> Completion:
        """Cut a generated row at EOS / a stop string and say why it ended."""
        end = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
        body = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        if params.stop:
            cut = min((text.find(s) for s in params.stop if s in text), default=-1)
            if cut != -1:
                # the row stopped on the stop string; what follows in the row is padding
                return Completion(text=text[:cut], finish_reason="stop", completion_tokens=len(body))
        if end is not None and not params.ignore_eos:
            return Completion(text=text, finish_reason="stop", completion_tokens=end + 1)
        return Completion(text=text, finish_reason="length", completion_tokens=len(tokens))


class _RowSampler:
    """Temperature, top-k and top-p (in that order, as transformers' warpers apply them), then
    one draw per row from that row's own generator.

    Top-p needs the tokens in probability order. A full sort of a 49k vocabulary for 64 rows
    costs ~200 ms a step on 2 CPU cores (as much as the forward pass of a 135M model), so the
    sampler takes the top `_CANDIDATES` tokens only and falls back to the full vocabulary for the
    rare step where they hold less than top_p of the mass: the result is exact either way.
    """

    _CANDIDATES = 1024

    def __init__(self, seeds: list[int], params: SamplingParams, device: str) -> None:
        import torch

        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature = params.temperature
        self.top_k = params.top_k
        self.top_p = params.top_p

    def select(self, keep: list[int]) -> None:
        """Keep the generators of the rows still in the batch."""
        self.generators = [self.generators[j] for j in keep]

    def sample(self, scores: Any) -> Any:
        """One token id per row."""
        import torch

        logits = scores.float() / self.temperature
        vocab = logits.shape[-1]
        if self.top_k > 0:
            k = min(self.top_k, vocab)
        elif self.top_p < 1.0:
            k = min(self._CANDIDATES, vocab)
        else:
            k = vocab
        if k == vocab and self.top_p >= 1.0:
            ids = None  # plain sampling from the whole distribution: no ordering needed
            probs = torch.softmax(logits, dim=-1)
        else:
            probs, ids = self._nucleus(logits, k)
            if self.top_k == 0 and k < vocab and bool((probs.sum(-1) < self.top_p - 1e-6).any()):
                probs, ids = self._nucleus(logits, vocab)
        # one uniform number per row from that row's generator; inverse-CDF sampling
        u = torch.stack([torch.rand((), generator=g, device=probs.device) for g in self.generators])
        cdf = probs.cumsum(dim=-1)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).clamp_(max=probs.shape[-1] - 1)
        tokens = pick if ids is None else ids.gather(-1, pick)
        return tokens.squeeze(-1)

    def _nucleus(self, logits: Any, k: int) -> tuple[Any, Any]:
        """(unnormalised kept probabilities, token ids) of the k likeliest tokens after top-k/top-p."""
        import torch

        values, ids = torch.topk(logits, k, dim=-1)  # sorted, likeliest first
        if self.top_k > 0:
            probs = torch.softmax(values, dim=-1)  # top-k first: renormalise over the k
        else:
            probs = torch.exp(values - torch.logsumexp(logits, dim=-1, keepdim=True))
        if self.top_p < 1.0:
            before = probs.cumsum(dim=-1) - probs
            probs = probs.masked_fill(before >= self.top_p, 0.0)  # the first token always stays
        return probs, ids
