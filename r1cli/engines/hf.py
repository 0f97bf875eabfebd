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
from dataclasses import dataclass
from typing import Any, ClassVar

from r1cli.engines import DEFAULT_MODEL, Completion, Generation, Prompt, SamplingParams, sample_seed, stop_end
from r1cli.engines.options import EngineOptions, dtype_option, engine_batch_size


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 decoding of a
    135M model measured 1.75x faster than fp32 on 2 cores; elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True, kw_only=True)
class HFOptions(EngineOptions):
    engine: ClassVar[str] = "hf"

    # A GRPO step's generation batch (prompts x generations, e.g. 2 x 8 = 16) fits in one call; past
    # 64 rows the per-step sampling cost on 2 CPU cores grows faster than the forward pass it amortises.
    batch_size: int = engine_batch_size(64)
    dtype: str | None = dtype_option("bf16 on GPU and on CPUs with bf16 instructions, else fp32")


class HFEngine:
    name = "hf"
    summary = "transformers, any machine"
    Options = HFOptions

    def __init__(self, model: str | None = None, options: HFOptions | Any = None, *, device: str | None = None,
                 **values: Any) -> None:
        """`options`: HFOptions or a mapping of its fields; keywords (batch_size=…, dtype=…) add to it."""
        from r1cli.models import check_spec

        opts = HFOptions.of(options, **values)
        model = model or DEFAULT_MODEL
        check_spec(model)  # a misspelt alias fails here, before torch is imported

        import torch

        from r1cli.models import load_model, load_tokenizer, model_name

        self.options = opts
        self.model_name = model_name(model)
        self.batch_size = opts.batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if opts.dtype in (None, "auto"):
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") or cpu_has_fast_bf16() else torch.float32
        else:
            torch_dtype = opts.dtype
        self.tokenizer = load_tokenizer(model)
        self.model = load_model(model, dtype=torch_dtype, device=self.device)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        forward_params = inspect.signature(self.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward_params
        # transformers 5.24 renamed the forward's `past_key_values` to `cache` (the old name warns
        # on every call); earlier releases only know `past_key_values`.
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"

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
        rows = self._decode(ids, seeds, params)
        # the sampled tokens' log-probs under the sampling distribution (GRPO's rollout reads them);
        # greedy decoding draws from a point mass: log-prob 0
        self.last_logprobs = [row.logprobs for row in rows]
        return [self._complete(row, params) for row in rows]

    def generate_budgets(self, prompts: Sequence[Prompt], params: SamplingParams, budgets: Sequence[int], *,
                         keys: Sequence[str] | None = None) -> dict[int, list[Generation]]:
        """A thinking-budget sweep in one decode: every row runs to the largest budget and forks a
        copy (batch row + KV cache) at each smaller one, which is closed there and answers."""
        sweep = tuple(sorted(set(budgets)))
        encoded = [self.encode(p) for p in prompts]
        keys = list(keys) if keys is not None else [str(i) for i in range(len(encoded))]
        rows = sorted(((i, s) for i in range(len(encoded)) for s in range(params.n)), key=lambda r: len(encoded[r[0]]))
        results: dict[tuple[int, int, int], Completion] = {}
        # a batch starts with batch_size rows, as a single run's does; each row's forks join it for
        # as long as they answer (--answer-budget bounds that). Starting batch_size / len(sweep)
        # rows instead, to cap the forks' peak, cost 1.6x: decode steps are memory-bound, so four
        # batches of 16 rows take nearly four times one batch of 64 (benchmarks/think_budget.py)
        step = self.batch_size
        for start in range(0, len(rows), step):
            batch = rows[start : start + step]
            seeds = [sample_seed(params.seed, keys[i], s) for i, s in batch]
            decoded = self._decode([encoded[i] for i, _ in batch], seeds, params, sweep=sweep)
            for (i, s), mine in zip(batch, _by_origin(decoded, len(batch))):
                for b in sweep:
                    row = next((r for r in mine if r.budget == b), None) or mine[0]  # unforked: the main row's
                    results[(i, s, b)] = self._complete(row, params)
        return {b: [Generation(prompt_tokens=len(encoded[i]), completions=[results[(i, s, b)] for s in range(params.n)])
                    for i in range(len(encoded))] for b in sweep}

    def _complete(self, row: Any, params: SamplingParams) -> Completion:
        completion = self._finish(row.tokens, params)
        return row.annotate(completion) if row.tracked else completion

    def _decode(self, ids: list[list[int]], seeds: list[int], params: SamplingParams,
                sweep: tuple[int, ...] = ()) -> list[Any]:
        """The rows of one batch, decoded: the input rows in order, then any sweep forks."""
        import torch
        from transformers import DynamicCache

        from r1cli.engines._thinking import Row, Thinking

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
        think = Thinking(self.tokenizer, params, sweep) if params.tracks_thinking or sweep else None
        rows = [Row(origin=r, budget=params.think_budget, tracked=think is not None) for r in range(len(ids))]
        if think is not None:
            for row, x in zip(rows, ids):
                think.start(row, x)
        active = list(rows)  # the row of each batch row still decoding
        cache = DynamicCache(config=self.model.config)
        # the samples of one prompt share its prefill: each distinct prompt once, then its cache is copied
        firsts, copies = _distinct(ids)
        with torch.inference_mode():
            if len(firsts) < len(ids):
                pick = torch.tensor(firsts, device=device)
                logits = self._forward(input_ids[pick], attention[pick], positions[pick], cache, prefill=True)
                cache.batch_select_indices(torch.tensor(copies, device=device))
                logits = logits[torch.tensor(copies, device=logits.device)]
            else:
                logits = self._forward(input_ids, attention, positions, cache, prefill=True)
            while True:
                if banned is not None:
                    logits[:, banned] = float("-inf")
                fed = [bool(row.queue) for row in active]  # rows fed a forced token this step draw nothing
                if sampler:
                    values = sampler.sample(logits, skip=fed if any(fed) else None).tolist()
                    chosen = sampler.chosen
                else:
                    values, chosen = logits.argmax(dim=-1).tolist(), [0.0] * len(active)
                index, hides, born = [], [], []
                for j, row in enumerate(active):
                    if fed[j]:
                        values[j] = row.queue.pop(0)
                        chosen[j] = self._forced_logprob(logits[j], values[j], params)
                    row.tokens.append(values[j])
                    row.logprobs.append(chosen[j])
                    if not fed[j] and self._ended(row.tokens, params):  # EOS or a stop string
                        continue
                    hide, forks = think.advance(row, forced=fed[j]) if think is not None else (0, ())
                    if row.tokens[-1] != values[j] or hide:  # a too-early close became "Wait"
                        values[j] = row.tokens[-1]
                        row.logprobs[-1] = self._forced_logprob(logits[j], values[j], params)
                    if len(row.tokens) < params.max_new_tokens and not _answered(row, params):
                        index.append(j)
                        hides.append(hide)
                        for fork in forks:
                            born.append((j, fork))
                rows.extend(fork for _, fork in born)
                index += [j for j, _ in born]
                hides += [0] * len(born)
                if not index:
                    break
                if index != list(range(len(active))):  # drop finished rows, duplicate forked ones
                    select = torch.tensor(index, device=device)
                    cache.batch_select_indices(select)
                    attention, positions = attention[select], positions[select]
                    if sampler:
                        sampler.select(index)
                active = [active[j] for j in index[: len(index) - len(born)]] + [fork for _, fork in born]
                positions = positions[:, -1:]
                for j, hide in enumerate(hides):
                    if hide:  # take the early close's cached tokens back: masked out, positions rewound
                        attention[j, -hide:] = 0
                        positions[j] -= hide
                tokens = torch.tensor([values[j] for j in index], device=device)
                attention = torch.cat([attention, attention.new_ones((len(active), 1))], dim=-1)
                positions = positions + 1
                logits = self._forward(tokens.unsqueeze(-1), attention, positions, cache, prefill=False)
        return rows

    @staticmethod
    def _forced_logprob(logits: Any, token: int, params: SamplingParams) -> float:
        """A forced token's log-prob under the temperature-scaled distribution (0 for greedy)."""
        import torch

        if params.temperature <= 0:
            return 0.0
        return float(torch.log_softmax(logits.float() / params.temperature, dim=-1)[token])

    def _forward(self, input_ids: Any, attention: Any, positions: Any, cache: Any, *, prefill: bool) -> Any:
        """Next-token logits (fp32) of each row."""
        kwargs: dict[str, Any] = {self._cache_kwarg: cache}
        if prefill and self._keeps_logits:
            kwargs["logits_to_keep"] = 1  # the LM head on the last position only, not the whole prompt
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                         use_cache=True, **kwargs)
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
        """Cut a generated row at EOS / just after a stop string and say why it ended."""
        end = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
        body = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        stopped = stop_end(text, params.stop)
        if stopped is not None:
            # the row stopped on the stop string, which stays in the text; what follows it in the
            # text is the rest of the token that completed it
            return Completion(text=text[:stopped], finish_reason="stop", completion_tokens=len(body))
        if end is not None and not params.ignore_eos:
            return Completion(text=text, finish_reason="stop", completion_tokens=end + 1)
        return Completion(text=text, finish_reason="length", completion_tokens=len(tokens))


def _answered(row: Any, params: SamplingParams) -> bool:
    """Whether the row wrote its whole answer allowance (`answer_budget` tokens after the think block)."""
    return (params.answer_budget is not None and row.answer_start is not None
            and len(row.tokens) - row.answer_start >= params.answer_budget)


def _distinct(ids: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """The first row of each distinct prompt, and for every row the index of its prompt among those.

    >>> _distinct([[1, 2], [3], [1, 2], [1, 2]])
    ([0, 1], [0, 1, 0, 0])
    """
    seen: dict[tuple[int, ...], int] = {}
    firsts, copies = [], []
    for r, x in enumerate(ids):
        key = tuple(x)
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(r)
        copies.append(seen[key])
    return firsts, copies


def _by_origin(rows: list[Any], count: int) -> list[list[Any]]:
    """The decoded rows of each input row: its main row first, then its forks."""
    out: list[list[Any]] = [[] for _ in range(count)]
    for row in rows:
        out[row.origin].append(row)
    return out


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
        self.device = device
        self.chosen: list[float] = []  # the log-prob of each row's draw in the last step
        self.temperature = params.temperature
        self.top_k = params.top_k
        self.top_p = params.top_p

    def select(self, keep: list[int]) -> None:
        """Keep the generators of the rows still in the batch; a row kept twice (a thinking-budget
        fork) gets a copy of its generator's state, so both continue the same stream."""
        import torch

        out, seen = [], set()
        for j in keep:
            if j in seen:
                copy = torch.Generator(device=self.device)
                copy.set_state(self.generators[j].get_state())
                out.append(copy)
            else:
                out.append(self.generators[j])
                seen.add(j)
        self.generators = out

    def sample(self, scores: Any, skip: list[bool] | None = None) -> Any:
        """One token id per row; rows in `skip` (fed a forced token) leave their generator untouched."""
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
        half = torch.tensor(0.5, device=probs.device)
        u = torch.stack([half if skip and skip[j] else torch.rand((), generator=g, device=probs.device)
                         for j, g in enumerate(self.generators)])
        cdf = probs.cumsum(dim=-1)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).clamp_(max=probs.shape[-1] - 1)
        tokens = pick if ids is None else ids.gather(-1, pick)
        self.chosen = (probs.gather(-1, pick) / cdf[:, -1:]).clamp_(min=1e-30).log_().squeeze(-1).tolist()
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
