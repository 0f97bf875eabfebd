"""Budget forcing inside the hf engine's decode loop (s1, Muennighoff et al. 2025).

Each row of a decode batch carries a `Row`: its tokens, where its think block began, and what
the engine did to the block. `Thinking.advance` runs after every token a row receives:

- before the block: it watches for `<think>` (a prompt that ends inside an open block, e.g. a
  prefilled `<think>`, starts there);
- inside: the block's tokens are counted; at `think_budget` the close (`</think>` and the
  answer opening the template expects) is queued and fed through the model token by token, so
  the KV cache stays valid; a `</think>` before `min_think` steps is taken back (its cached
  tokens are masked, positions rewound) and "Wait" is fed instead;
- sweeps: a row that runs to the largest budget forks a copy of itself (batch row and KV cache)
  the moment its block reaches each smaller budget, and the copy is closed there. The think
  text of budget b is then the prefix of the largest budget's, by construction, and the shared
  prefix is decoded once.

Text checks decode a tail of at most 8 tokens: `</think>` is 1-4 tokens in the tokenizers r1
meets (SmolLM2: 4), so the window always holds a tag that ends in the newest token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from r1cli.engines import DEFAULT_THINK_CLOSE, THINK_EXTEND, Completion, SamplingParams

OPEN, CLOSE = "<think>", "</think>"
_WINDOW = 8
_PROMPT_TAIL = 24  # prompt tokens decoded to see whether it ends inside an open think block


@dataclass
class Row:
    origin: int  # the batch row (prompt x sample) it came from
    budget: int | None  # the thinking budget this row enforces
    tracked: bool = False  # count the think block (a budget, --min-think or a sweep is set)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)  # forced tokens still to feed
    think_start: int | None = None  # index in `tokens` where the block's content begins
    think_end: int | None = None  # index where the close begins
    answer_start: int | None = None
    steps: int = 0  # think-phase steps, never rewound (extensions cannot loop)
    closed: bool = False  # the engine closed the block
    extended: bool = False  # a too-early close was replaced by "Wait"
    pending: list[int] = field(default_factory=list)  # sweep budgets still to fork at

    @property
    def thinking(self) -> bool:
        return self.think_start is not None and self.think_end is None

    def fork(self, budget: int) -> Row:
        return replace(self, budget=budget, tokens=list(self.tokens), logprobs=list(self.logprobs),
                       queue=[], pending=[])

    def annotate(self, completion: Completion) -> Completion:
        """The completion with `think_tokens`, `answer_tokens` and `forced`."""
        n = completion.completion_tokens
        if self.think_start is None:
            think, answer = 0, n
        else:
            end = self.think_end if self.think_end is not None else n
            think = max(0, min(end, n) - self.think_start)
            answer = max(0, n - self.answer_start) if self.answer_start is not None else 0
        fed_close = self.closed and self.think_end is not None and len(self.tokens) > self.think_end
        forced = "close" if fed_close else ("extend" if self.extended else None)
        return replace(completion, think_tokens=think, answer_tokens=answer, forced=forced)


class Thinking:
    """The think-block rules of one decode batch."""

    def __init__(self, tokenizer: Any, params: SamplingParams, sweep: tuple[int, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.params = params
        self.sweep = sweep
        self.close_ids = self._ids(params.think_close or DEFAULT_THINK_CLOSE)
        self.extend_ids = self._ids(THINK_EXTEND)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def start(self, row: Row, prompt_ids: list[int]) -> None:
        tail = self._text(prompt_ids[-_PROMPT_TAIL:])
        if tail.rfind(OPEN) > tail.rfind(CLOSE):  # e.g. a prefilled "<think>"
            row.think_start = 0
        if self.sweep:
            row.budget = max(self.sweep)
            row.pending = [b for b in self.sweep if b < row.budget]

    def advance(self, row: Row, *, forced: bool) -> tuple[int, list[Row]]:
        """After a token joined `row.tokens`: (cached tokens to hide, forks to add to the batch).

        A hide > 0, or a row whose last token changed, means the newest token was replaced (by
        "Wait"); the caller feeds `row.tokens[-1]`.
        """
        if forced and not row.thinking:  # the close and answer opening being fed
            if not row.queue and row.closed and row.answer_start is None:
                row.answer_start = len(row.tokens)
            return 0, []
        if row.think_start is None:
            if OPEN in self._text(row.tokens[-_WINDOW:]):
                row.think_start = len(row.tokens)
            return 0, []
        if not row.thinking:
            return 0, []
        inside = len(row.tokens) - row.think_start
        window = row.tokens[-min(inside, _WINDOW):]
        if not forced and CLOSE in self._text(window):  # fed "Wait" tokens are not the model's close
            k = next(k for k in range(1, len(window) + 1) if CLOSE in self._text(window[-k:]))
            row.steps += 1
            if self.params.min_think is not None and row.steps < self.params.min_think:
                del row.tokens[-k:], row.logprobs[-k:]
                row.tokens.append(self.extend_ids[0])
                row.queue = list(self.extend_ids[1:])
                row.extended = True
                return k - 1, []  # the tag's earlier tokens are in the cache; the newest was not fed
            row.think_end = len(row.tokens) - k
            row.answer_start = len(row.tokens)
            return 0, []
        row.steps += 1
        forks = []
        for b in [b for b in row.pending if b <= inside]:
            row.pending.remove(b)
            fork = row.fork(b)
            self._close(fork)
            forks.append(fork)
        if row.budget is not None and inside >= row.budget:
            self._close(row)
        return 0, forks

    def _close(self, row: Row) -> None:
        row.think_end = len(row.tokens)
        row.queue = list(self.close_ids)
        row.closed = True
