"""GRPO's forward passes with each group's prompt computed once.

GRPO samples G completions of every prompt, and TRL scores a training batch as B independent rows
of prompt + completion: the prompt goes through the model G times in every forward (the reference
model's, the policy's, gradient checkpointing's recompute) and in the backward. Here the rows of a
batch that share a prompt are packed into one sequence,

    prompt[:-1] (left-padded to H) | prompt[-1] completion_1 | … | prompt[-1] completion_K

each segment C + 1 long, with the position ids its tokens have in TRL's padded row. Each segment
starts with its own copy of the prompt's last token, whose hidden state predicts the completion's
first token, so TRL's fused LM head scores the packed row with pre-shifted labels, and the result is
TRL's per-token log-probabilities and entropies up to floating-point summation order.

Attention is where the packing lives: under the packed call, r1's attention function (registered
with transformers' AttentionInterface, and otherwise plain `sdpa`) runs the prompt region causally
on itself and every segment against [prompt keys, its own keys], so nothing is computed for the
pairs a mask would hide: a group costs H + K (C + 1) tokens of linear layers where TRL's rows cost
K (H + 1 + C). Neither TRL nor transformers shares a prompt across the rows of a training forward,
which is why this is written here. It applies to the model families in `FAMILIES` under sdpa, with
full (not sliding-window) attention and no logit soft-capping; every other case (flash-attention,
vision inputs, MoE aux losses, rows that share no prompt) takes TRL's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

NAME = "r1_shared_prefix"  # r1's attention function in transformers' AttentionInterface
# plain causal attention; the tests run llama
FAMILIES = ("llama", "qwen2", "qwen3", "mistral", "olmo2", "granite", "smollm3")
MIN_SAVING = 0.05  # pack only when the cost model saves at least this share of the forward


@dataclass
class Layout:
    """Packed rows: a prompt region of `head` columns, then `count` segments of `span` columns."""

    head: int
    count: int
    span: int
    prompt_valid: Any  # (P, head) bool: the prompt region's columns that hold tokens
    segment_valid: Any  # (P, count, span) bool: the segments' tokens that later ones may attend to

    def attend(self, query: Any, key: Any, value: Any, *, scale: float | None, dropout: float = 0.0) -> Any:
        """Attention of packed (P, heads, S, D) queries: the prompt region on itself (causal), every
        segment on the prompt region and itself (causal). Returns (P, S, heads, D), as transformers'
        attention functions do."""
        import torch
        import torch.nn.functional as F

        if key.size(1) != query.size(1):  # grouped-query attention: one key/value head per group of query heads
            key = key.repeat_interleave(query.size(1) // key.size(1), dim=1)
            value = value.repeat_interleave(query.size(1) // value.size(1), dim=1)
        rows, heads, _, dim = query.shape
        h, k, w = self.head, self.count, self.span
        device = query.device

        def segments(x: Any) -> Any:  # (P, heads, k*w, D) -> (P*k, heads, w, D)
            return x[:, :, h:].reshape(rows, heads, k, w, dim).transpose(1, 2).reshape(rows * k, heads, w, dim)

        causal_h = torch.ones(h, h, dtype=torch.bool, device=device).tril()
        eye_h = torch.eye(h, dtype=torch.bool, device=device)
        prompt_mask = (causal_h & self.prompt_valid[:, None, :]) | eye_h  # a pad query sees itself: no empty row
        out_prompt = F.scaled_dot_product_attention(query[:, :, :h], key[:, :, :h], value[:, :, :h],
                                                    attn_mask=prompt_mask[:, None], dropout_p=dropout, scale=scale)
        prompt_keys = self.prompt_valid[:, None, None, :].expand(rows, k, w, h)
        own = torch.ones(w, w, dtype=torch.bool, device=device).tril() & self.segment_valid[:, :, None, :]
        own = own | torch.eye(w, dtype=torch.bool, device=device)
        seg_mask = torch.cat([prompt_keys, own], dim=-1).reshape(rows * k, 1, w, h + w)

        def with_prompt(x: Any) -> Any:  # segment keys or values, preceded by their prompt region's
            shared = x[:, None, :, :h].expand(rows, k, heads, h, dim).reshape(rows * k, heads, h, dim)
            return torch.cat([shared, segments(x)], dim=2)

        out_seg = F.scaled_dot_product_attention(segments(query), with_prompt(key), with_prompt(value),
                                                 attn_mask=seg_mask, dropout_p=dropout, scale=scale)
        out_seg = out_seg.reshape(rows, k, heads, w, dim).transpose(1, 2).reshape(rows, heads, k * w, dim)
        return torch.cat([out_prompt, out_seg], dim=2).transpose(1, 2).contiguous()


@dataclass
class Packing:
    """Packed model inputs, their attention layout, and where each original row's completion lies."""

    input_ids: Any  # (P, S)
    position_ids: Any  # (P, S)
    shift_labels: Any  # (P, S): the token each position predicts, -100 where none is scored
    layout: Layout
    rows: Any  # (B,): the packed row of each original row
    starts: Any  # (B,): where its segment starts
    width: int  # completion tokens per original row (TRL's logits_to_keep)

    def unpack(self, values: Any) -> Any:
        """(P, S) per-position values -> (B, width), the original rows' completion positions."""
        import torch

        offsets = torch.arange(self.width, device=values.device)
        return values[self.rows[:, None], self.starts[:, None] + offsets]


def segments_per_row(sizes: list[int], head: int, width: int, row_len: int, *, per_token: float,
                     per_pair: float) -> tuple[int, float]:
    """How many segments each packed row holds (groups of `sizes` completions are split into rows of
    that many, the last padded with empty segments), and the packed cost's share of TRL's.

    Costs in FLOPs: a token's linear layers `per_token`, one attended query-key pair `per_pair`; TRL's
    rows are `row_len` long and causal.

    >>> k, share = segments_per_row([8, 8], 44, 128, 173, per_token=2.7e8, per_pair=6.9e4)
    >>> k, round(share, 2)
    (8, 0.78)
    >>> segments_per_row([1, 1], 44, 128, 173, per_token=2.7e8, per_pair=6.9e4)  # nothing shared, nothing saved
    (1, 1.0)
    """
    span = width + 1
    standard = sum(sizes) * (row_len * per_token + row_len ** 2 / 2 * per_pair)
    best = (1, float("inf"))
    for k in range(1, max(sizes) + 1):
        rows = sum(-(-n // k) for n in sizes)
        pairs = head ** 2 / 2 + k * span * (head + span / 2)
        cost = rows * ((head + k * span) * per_token + pairs * per_pair)
        if cost < best[1]:
            best = (k, cost)
    return best[0], best[1] / standard


def plan(input_ids: Any, attention_mask: Any, width: int, *, per_token: float, per_pair: float) -> Packing | None:
    """The packing of a batch of TRL rows (left-padded prompt + right-padded completion of `width`
    tokens), or None when no rows share a prompt or packing would not save `MIN_SAVING`."""
    import torch

    batch, length = input_ids.shape
    prompt_cols = length - width
    if width < 1 or prompt_cols < 1 or batch < 2:
        return None
    prompt_ids, prompt_mask = input_ids[:, :prompt_cols], attention_mask[:, :prompt_cols].bool()
    if not bool(prompt_mask[:, -1].all()):  # not left-padded: the last prompt column must be a token
        return None
    groups: dict[bytes, list[int]] = {}
    for row in range(batch):
        key = prompt_ids[row].masked_fill(~prompt_mask[row], -1).cpu().numpy().tobytes()
        groups.setdefault(key, []).append(row)
    if all(len(rows) < 2 for rows in groups.values()):
        return None
    lengths = {key: int(prompt_mask[rows[0]].sum()) for key, rows in groups.items()}
    if any(not bool(prompt_mask[rows[0], prompt_cols - lengths[key]:].all()) for key, rows in groups.items()):
        return None  # a prompt with a gap in its mask: not TRL's left padding
    head = max(lengths.values()) - 1
    if head < 1:
        return None
    count, share = segments_per_row([len(r) for r in groups.values()], head, width, length,
                                    per_token=per_token, per_pair=per_pair)
    if share > 1 - MIN_SAVING:
        return None
    pieces = [(key, rows[i:i + count]) for key, rows in groups.items() for i in range(0, len(rows), count)]
    span = width + 1
    device = input_ids.device
    shape = (len(pieces), head + count * span)
    ids = torch.zeros(shape, dtype=input_ids.dtype, device=device)
    positions = torch.zeros(shape, dtype=torch.long, device=device)
    labels = torch.full(shape, -100, dtype=input_ids.dtype, device=device)
    prompt_valid = torch.zeros(len(pieces), head, dtype=torch.bool, device=device)
    segment_valid = torch.ones(len(pieces), count, span, dtype=torch.bool, device=device)  # empty segments too
    where_row = torch.zeros(batch, dtype=torch.long, device=device)
    where_start = torch.zeros(batch, dtype=torch.long, device=device)
    offsets = torch.arange(span, device=device)
    for p, (key, rows) in enumerate(pieces):
        first = rows[0]
        n = lengths[key] - 1  # the prompt tokens before its last, right-aligned in the prompt region
        if n:
            ids[p, head - n:head] = prompt_ids[first, prompt_cols - 1 - n:prompt_cols - 1]
            positions[p, head - n:head] = torch.arange(prompt_cols - 1 - n, prompt_cols - 1, device=device)
            prompt_valid[p, head - n:] = True
        for i, row in enumerate(rows):
            start = head + i * span
            completion = attention_mask[row, prompt_cols:].bool()
            ids[p, start:start + span] = torch.cat([prompt_ids[row, -1:], input_ids[row, prompt_cols:]])
            positions[p, start:start + span] = prompt_cols - 1 + offsets
            segment_valid[p, i, 1:] = completion
            labels[p, start:start + width] = input_ids[row, prompt_cols:].masked_fill(~completion, -100)
            where_row[row], where_start[row] = p, start
    return Packing(ids, positions, labels, Layout(head, count, span, prompt_valid, segment_valid),
                   where_row, where_start, width)


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, *, r1_layout: Layout | None = None,
               **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention function under NAME: plain sdpa, or the packed layout's attention."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if r1_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    dropout = kwargs.get("dropout", 0.0) if module.training else 0.0
    return r1_layout.attend(query, key, value, scale=kwargs.get("scaling"), dropout=dropout), None


@lru_cache(maxsize=1)
def register() -> str:
    """NAME in transformers' attention and mask registries (the mask is sdpa's)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def supported(config: Any) -> bool:
    """Whether a model's attention is plain causal sdpa over the whole sequence, which packing reproduces.

    >>> from types import SimpleNamespace as C
    >>> supported(C(model_type="llama", _attn_implementation="sdpa", is_encoder_decoder=False))
    True
    >>> supported(C(model_type="mistral", _attn_implementation="sdpa", sliding_window=4096))
    False
    >>> supported(C(model_type="llama", _attn_implementation="flash_attention_2"))
    False
    """
    if getattr(config, "model_type", None) not in FAMILIES or getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        if any(t != "full_attention" for t in layer_types):
            return False
    elif getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True):
        return False
    return not getattr(config, "attn_logit_softcapping", None)


def costs(model: Any) -> tuple[float, float] | None:
    """(FLOPs per token of the linear layers, FLOPs per attended query-key pair) of a model that
    packing applies to, with its attention switched to NAME; None: TRL's own forward."""
    config = getattr(model, "config", None)
    if config is None or not supported(config):
        return None
    hidden, layers = getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None)
    if not hidden or not layers:
        return None
    config._attn_implementation = register()  # sdpa itself wherever no packed layout is passed
    return 2.0 * sum(p.numel() for p in model.parameters()), 4.0 * hidden * layers


@lru_cache(maxsize=None)
def shared_prefix_trainer(base: type) -> type:
    """`base` (a GRPOTrainer class) whose log-probability forwards pack the rows that share a prompt."""

    class SharedPrefixTrainer(base):
        def _get_per_token_logps_and_entropies(  # noqa: PLR0913
                self, model, input_ids, attention_mask, logits_to_keep,  # noqa: ANN001
                batch_size=None, compute_entropy=False, compute_aux_loss=False, **extra):  # noqa: ANN001,ANN003,ANN202
            cost = None if compute_aux_loss or any(v is not None for v in extra.values()) else _costs_of(self, model)
            if cost is None:
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                    compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **extra)
            import torch

            step = batch_size or input_ids.size(0)
            logps, entropies = [], []
            for start in range(0, input_ids.size(0), step):
                ids, mask = input_ids[start:start + step], attention_mask[start:start + step]
                packing = plan(ids, mask, logits_to_keep, per_token=cost[0], per_pair=cost[1])
                if packing is None:
                    lp, ent, _ = super()._get_per_token_logps_and_entropies(
                        model, ids, mask, logits_to_keep, batch_size=ids.size(0), compute_entropy=compute_entropy)
                else:
                    lp, ent = self._r1_packed_forward(model, packing, compute_entropy)
                logps.append(lp)
                entropies.append(ent)
            return (torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None)

        def _r1_packed_forward(self, model, packing, compute_entropy):  # noqa: ANN001, ANN202
            with self.accelerator.autocast():
                out = model(input_ids=packing.input_ids, position_ids=packing.position_ids, r1_layout=packing.layout,
                            shift_labels=packing.shift_labels, fused_lm_head=True)
            return packing.unpack(out.log_probs), packing.unpack(out.entropy) if compute_entropy else None

    SharedPrefixTrainer.__name__ = SharedPrefixTrainer.__qualname__ = f"SharedPrefix{base.__name__}"
    return SharedPrefixTrainer


def _unwrapped(trainer: Any, model: Any) -> Any:
    model = trainer.accelerator.unwrap_model(model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _costs_of(trainer: Any, model: Any) -> tuple[float, float] | None:
    cache = trainer.__dict__.setdefault("_r1_costs", {})
    key = id(model)
    if key not in cache:
        cache[key] = costs(_unwrapped(trainer, model))
    return cache[key]
