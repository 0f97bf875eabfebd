r"""Rejection sampling (R1 §2.3.3): keep the correct, readable samples of each prompt, SFT-ready.

`select` is what `r1 reject-sample` runs, and what `r1 distill` and notebooks call:

>>> recs = [{"id": "p1", "sample": s, "prompt": "2+2?", "completion": c, "rewards": {"accuracy": a}, "reward": a}
...         for s, (c, a) in enumerate([("<think>2+2=4</think> 4", 1.0), ("<think>2+2=5</think> 5", 0.0),
...                                     ("<think>2+2=4</think>  4", 1.0)])]
>>> stats = SelectStats()
>>> [r["sample"] for r in select(((f"rec {i}", r) for i, r in enumerate(recs)), SelectPolicy(), stats)]
[0]
>>> stats.records_kept, dict(stats.dropped)
(1, {'incorrect': 1, 'duplicate': 1})
>>> policy = SelectPolicy(keep_think=False, format="messages")
>>> next(select([("rec 0", recs[0])], policy))["messages"]
[{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}]

Records come grouped by `id` (a prompt's samples together, as `r1 rollout` writes them); only
the current group is held in memory, plus 8–16 bytes per group id seen, which is how a group
that reappears after another is caught. Each record is checked in the order of `REASONS`, and
a dropped record is counted under the first reason it fails; then, within the group and in
order of preference (higher `reward`, then shorter, then input order), duplicates and
near-duplicates of a kept sample are dropped, and past `max_per_prompt` the rest. The kept
records are written in input order.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from r1cli import reject_filters as filters
from r1cli.errors import BadInput
from r1cli.templates import strip_think

FORMATS = ("completion", "messages")
DEDUP = ("none", "exact", "near")
# Drop reasons, in the order the checks run (cheap ones first, langdetect last), then the group's.
REASONS = (
    "empty", "truncated", "too-long", "unverified", "incorrect", "no-reward", "low-reward",
    "code-block", "long-paragraph", "mixed-language", "language",
    "duplicate", "near-duplicate", "max-per-prompt",
)


@dataclass(frozen=True, kw_only=True)
class SelectPolicy:
    """What `r1 reject-sample` keeps. The defaults are R1's: correct, finished, readable, no exact duplicates.

    - `correct_only`: keep records whose `rewards.accuracy` is 1 (null: dropped as unverified).
    - `min_reward`: keep records whose `reward` is at least this (null: dropped as no-reward).
    - `language`: the target language (a langdetect code) of `min_language` and `max_mixed`;
      None: the prompt's language for `min_language`, the CoT's main script for `max_mixed`.
    - `min_language`: keep records whose CoT has at least this share of target-language words
      (R1's language-consistency measure): the record's `rewards.language` when it was scored
      and `language` is not given, else computed (langdetect: ~2 ms per sentence chunk).
    - `max_tokens`: drop completions of more `completion_tokens`. `drop_truncated`: drop those
      cut at the length limit (`finish_reason` "length").
    - Readability (R1's filters): `max_mixed`, the most share of CoT words in another script
      (None: off); `max_paragraph_words`, the most words between two line breaks (None: off);
      `drop_code_blocks`, drop fenced code blocks in completions of tasks other than `code`.
    - `dedup`: "exact" drops repeats of a kept completion (whitespace aside), "near" also those
      whose word-trigram Jaccard similarity with one is ≥ `near_threshold`, "none" keeps both.
    - `max_per_prompt`: keep at most this many per prompt, by reward, then shortest.
    - `keep_think`: False keeps only the text after `</think>` in the completion.
    - `format`: "completion" (prompt + completion, every other key kept) or "messages"
      ({"messages": [prompt messages…, assistant]} in place of prompt and completion).
    """

    correct_only: bool = True
    min_reward: float | None = None
    language: str | None = None
    min_language: float | None = None
    max_tokens: int | None = None
    drop_truncated: bool = True
    max_mixed: float | None = 0.02
    max_paragraph_words: int | None = 300
    drop_code_blocks: bool = True
    dedup: str = "exact"
    near_threshold: float = 0.8
    max_per_prompt: int | None = None
    keep_think: bool = True
    format: str = "completion"

    def __post_init__(self) -> None:
        for name in ("min_language", "max_mixed", "near_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1, got {value}")
        for name in ("max_tokens", "max_paragraph_words", "max_per_prompt"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.min_reward is not None and not math.isfinite(self.min_reward):
            raise ValueError(f"min_reward must be a finite number, got {self.min_reward}")
        if self.dedup not in DEDUP:
            raise ValueError(f"dedup must be one of {', '.join(DEDUP)}, got {self.dedup!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.language is not None:
            from r1cli.rewards.language import LANGUAGES, normalize_language

            code = normalize_language(self.language)
            if code not in LANGUAGES:
                raise ValueError(f"unsupported language {self.language!r}; choose from: {', '.join(sorted(LANGUAGES))}")
            object.__setattr__(self, "language", code)


@dataclass
class SelectStats:
    """Counts of one selection, filled in as groups are read. `dropped`: reason → records."""

    groups_in: int = 0
    groups_kept: int = 0
    records_in: int = 0
    records_kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def select(located: Iterable[tuple[str, dict[str, Any]]], policy: SelectPolicy,
           stats: SelectStats | None = None) -> Iterator[dict[str, Any]]:
    """The SFT-ready records `policy` keeps, from `(where, record)` pairs as `r1cli.sources.iter_records` yields them.

    Groups come out in input order, and so do a group's kept records. Raises BadInput naming
    `where` when a group id reappears after another group, when a record lacks `completion` or
    `prompt`, or lacks the field a check needs (`rewards.accuracy` for `correct_only`, `reward`
    for `min_reward`, `completion_tokens` for `max_tokens`).
    """
    for group in select_groups(located, policy, stats):
        yield from group


def select_groups(located: Iterable[tuple[str, dict[str, Any]]], policy: SelectPolicy,
                  stats: SelectStats | None = None) -> Iterator[list[dict[str, Any]]]:
    """As `select`, one list per input group (empty when none of its records is kept)."""
    stats = stats if stats is not None else SelectStats()
    for group in grouped(located):
        kept = select_group(group, policy, stats)
        yield kept


def grouped(located: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Contiguous runs of records with the same `id` (derived from `prompt` when absent, as `r1cli.prompts.prompt_id`).

    >>> [[w for w, _ in g] for g in grouped([("1", {"id": "a"}), ("2", {"id": "a"}), ("3", {"id": "b"})])]
    [['1', '2'], ['3']]
    >>> list(grouped([("1", {"id": "a"}), ("2", {"id": "b"}), ("3", {"id": "a"})]))
    Traceback (most recent call last):
    ...
    r1cli.errors.BadInput: 3: id 'a' reappears after other groups: the input is not grouped by id
    """
    seen = _IdSet()
    current: str | None = None
    group: list[tuple[str, dict[str, Any]]] = []
    for where, record in located:
        key = _group_key(where, record)
        if key != current:
            if group:
                yield group
            if not seen.add(key):
                raise BadInput(f"{where}: id '{key}' reappears after other groups: the input is not grouped by id",
                               hint="a prompt's samples must be together, as r1 rollout writes them; "
                                    "group the file first, e.g. jq -c -s 'group_by(.id)[][]' in.jsonl")
            current, group = key, []
        group.append((where, record))
    if group:
        yield group


def _group_key(where: str, record: dict[str, Any]) -> str:
    rid = record.get("id")
    if rid is not None:
        return str(rid)
    if "prompt" in record:
        from r1cli.prompts import prompt_id

        return prompt_id(record["prompt"])
    raise BadInput(f"{where}: no 'id' (nor 'prompt' to derive it from)",
                   hint="reject-sample groups a prompt's samples by id; r1 rollout writes it")


class _IdSet:
    """A set of 64-bit hashes of ids in one flat array (open addressing): 8–16 bytes per id.

    A Python set of the id strings would cost ~90 bytes per id: 86 MB against 17 MB here for a
    million ids (measured with tracemalloc). Two ids with the same 64-bit hash (odds ~n²/2⁶⁵: 3·10⁻⁸ for a
    million ids) would be taken for one.
    """

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))
        self._used = 0

    def add(self, key: str) -> bool:
        """Add `key`; False if it was already there."""
        h = (hash(key) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks an empty slot
        slots = self._slots
        mask = len(slots) - 1
        i = h & mask
        while slots[i]:
            if slots[i] == h:
                return False
            i = (i + 1) & mask
        slots[i] = h
        self._used += 1
        if 2 * self._used > len(slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        slots = self._slots = array("Q", bytes(16 * len(old)))
        mask = len(slots) - 1
        for h in old:
            if h:
                i = h & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = h


# ---- one group ---------------------------------------------------------------------------


def select_group(group: list[tuple[str, dict[str, Any]]], policy: SelectPolicy,
                 stats: SelectStats | None = None) -> list[dict[str, Any]]:
    """The SFT records `policy` keeps from one prompt's `(where, record)` pairs, in input order."""
    stats = stats if stats is not None else SelectStats()
    stats.groups_in += 1
    stats.records_in += len(group)
    candidates: list[tuple[int, dict[str, Any], str]] = []  # (position, record, output completion)
    for position, (where, record) in enumerate(group):
        text = _completion(where, record)
        out_text = text if policy.keep_think else strip_think(text)
        reason = drop_reason(where, record, text, out_text, policy)
        if reason is None:
            candidates.append((position, record, out_text))
        else:
            stats.dropped[reason] += 1
    use_tokens = all(isinstance(c[1].get("completion_tokens"), int) for c in candidates)
    candidates.sort(key=lambda c: preference(c[1], c[2], c[0], use_tokens=use_tokens))
    verdicts = filters.near_duplicates(
        [c[2] for c in candidates],
        policy.near_threshold if policy.dedup == "near" else None,
    ) if policy.dedup != "none" else [None] * len(candidates)
    chosen: list[tuple[int, dict[str, Any], str]] = []
    for candidate, verdict in zip(candidates, verdicts):
        if verdict is not None:
            stats.dropped[verdict] += 1
        elif policy.max_per_prompt is not None and len(chosen) >= policy.max_per_prompt:
            stats.dropped["max-per-prompt"] += 1
        else:
            chosen.append(candidate)
    chosen.sort(key=lambda c: c[0])
    kept = [sft_record(group[position][0], record, out_text, policy.format) for position, record, out_text in chosen]
    stats.records_kept += len(kept)
    stats.groups_kept += bool(kept)
    return kept


def preference(record: dict[str, Any], text: str, position: int, *, use_tokens: bool = True) -> tuple[float, int, int]:
    """Sort key of a group's samples, best first: higher `reward`, then shorter, then earlier.

    Length is `completion_tokens` when `use_tokens` (every sample of the group has it), else
    characters of `text`. A null reward sorts last.

    >>> sorted([({"reward": 1.0}, "long answer", 0), ({"reward": 1.0}, "short", 1), ({"reward": None}, "x", 2)],
    ...        key=lambda c: preference(*c, use_tokens=False))[0][1]
    'short'
    """
    reward = record.get("reward")
    score = float(reward) if isinstance(reward, (int, float)) and not isinstance(reward, bool) else -math.inf
    length = record["completion_tokens"] if use_tokens else len(text)
    return (-score, length, position)


def _completion(where: str, record: dict[str, Any]) -> str:
    from r1cli.rewards import completion_text

    if "completion" not in record:
        raise BadInput(f"{where}: no 'completion' field",
                       hint="reject-sample reads scored rollout records: r1 rollout … | r1 score … | r1 reject-sample")
    text = completion_text(record["completion"])
    if text is None:
        raise BadInput(f"{where}: 'completion' must be text (or chat messages with text content)")
    prefill = record.get("prefill")  # `r1 rollout --prefill`: the answer starts with it
    return prefill + text if isinstance(prefill, str) else text


def drop_reason(where: str, record: dict[str, Any], text: str, out_text: str, policy: SelectPolicy) -> str | None:
    """The first of `REASONS` for which `policy` drops this record (before the group's checks), or None.

    `text` is the completion, `out_text` what the output record would hold (the answer part
    with `keep_think=False`). Raises BadInput naming `where` when a field a check needs is missing.

    >>> drop_reason("x:1", {"rewards": {"accuracy": 0.0}}, "5", "5", SelectPolicy())
    'incorrect'
    >>> drop_reason("x:1", {"rewards": {"accuracy": 1.0}, "finish_reason": "length"}, "4", "4", SelectPolicy())
    'truncated'
    """
    if not out_text.strip():
        return "empty"
    if policy.drop_truncated and record.get("finish_reason") == "length":
        return "truncated"
    if policy.max_tokens is not None:
        tokens = record.get("completion_tokens")
        if not isinstance(tokens, int):
            raise BadInput(f"{where}: no integer 'completion_tokens': --max-tokens needs it",
                           hint="r1 rollout writes it; for other data, drop --max-tokens")
        if tokens > policy.max_tokens:
            return "too-long"
    if policy.correct_only:
        rewards = record.get("rewards")
        if not isinstance(rewards, dict) or "accuracy" not in rewards:
            raise BadInput(f"{where}: no rewards.accuracy: --correct-only keeps records whose accuracy is 1",
                           hint="score them first (r1 score -r accuracy), or pass --no-correct-only "
                                "(with --min-reward to keep by the total reward)")
        accuracy = rewards["accuracy"]
        if accuracy is None:
            return "unverified"
        if accuracy < 1.0:
            return "incorrect"
    if policy.min_reward is not None:
        if "reward" not in record:
            raise BadInput(f"{where}: no 'reward' field: --min-reward needs scored records",
                           hint="score them first, e.g. r1 score -r accuracy -r format")
        reward = record["reward"]
        if reward is None:
            return "no-reward"
        if reward < policy.min_reward:
            return "low-reward"
    if policy.drop_code_blocks and filters.has_stray_code(text, record.get("task")):
        return "code-block"
    if policy.max_paragraph_words is not None and filters.longest_paragraph(
            text, policy.max_paragraph_words) > policy.max_paragraph_words:
        return "long-paragraph"
    cot = filters.cot_of(text)
    if policy.max_mixed is not None and filters.mixed_share(cot, _allowed(policy.language)) > policy.max_mixed:
        return "mixed-language"
    if policy.min_language is not None:
        share = _language_share(record, cot, policy)
        if share is not None and share < policy.min_language:
            return "language"
    return None


def _allowed(language: str | None) -> frozenset[str] | None:
    if language is None:
        return None
    from r1cli.rewards.language import scripts_of

    return filters.script_families(scripts_of(language))


def _language_share(record: dict[str, Any], cot: str, policy: SelectPolicy) -> float | None:
    """The CoT's share of target-language words: the scored `rewards.language`, else computed."""
    rewards = record.get("rewards")
    if policy.language is None and isinstance(rewards, dict) and isinstance(rewards.get("language"), (int, float)):
        return float(rewards["language"])
    from r1cli.rewards.language import language_share, prompt_language

    target = policy.language or prompt_language(record.get("prompt"))
    return language_share(cot, target)


# ---- output ------------------------------------------------------------------------------


def sft_record(where: str, record: dict[str, Any], completion: str, format: str = "completion") -> dict[str, Any]:
    """The SFT record of a kept sample: `completion` replaced by the output text, or `messages`.

    The output text is the whole answer: a rollout's `prefill` is part of it (and the key goes).

    "completion": every key of the record; `completion` is text, or, when the prompt is chat
    messages, one assistant message (TRL's conversational prompt–completion shape: its
    SFTTrainer refuses a text completion after a chat prompt). "messages": the prompt as chat
    messages (a text prompt becomes one user message) + the assistant's completion, in place of
    `prompt` and `completion`; every other key kept.

    >>> sft_record("x", {"id": "a", "prompt": "Hi", "completion": "Hello"}, "Hello", "messages")
    {'id': 'a', 'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}]}
    >>> sft_record("x", {"prompt": [{"role": "user", "content": "Hi"}], "completion": "Hello"}, "Hello")["completion"]
    [{'role': 'assistant', 'content': 'Hello'}]
    """
    if "prompt" not in record:
        raise BadInput(f"{where}: no 'prompt' field", hint="an SFT record needs the prompt its completion answers")
    if record.get("template") is not None:
        record = seen_prompt(where, record, format)
    prompt = record["prompt"]
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        messages = [dict(m) for m in prompt]
    else:
        raise BadInput(f"{where}: 'prompt' must be text or a list of {{\"role\", \"content\"}} messages")
    answer = {"role": "assistant", "content": completion}
    if format == "completion":
        out = {k: v for k, v in record.items() if k != "prefill"}  # `completion` holds it now
        out["completion"] = completion if isinstance(prompt, str) else [answer]
        return out
    out = {}
    for key, value in record.items():
        if key == "prompt":
            out["messages"] = [*messages, answer]
        elif key not in ("completion", "prefill"):
            out[key] = value
    return out


def seen_prompt(where: str, record: dict[str, Any], format: str) -> dict[str, Any]:
    """The record with `prompt` as the model saw it: its `template` and `system` applied.

    A rollout record keeps the raw prompt and how it was rendered; its SFT record carries the
    rendered prompt (r1-zero: the whole instruction text; chat: the messages with the system
    turn), marked `template: none` (text) or `chat` (messages), which render it unchanged. So
    `sft` shows the student the teacher's prompt without being told the template again.

    >>> seen_prompt("x", {"prompt": "2+2?", "template": "r1-zero", "system": None}, "completion")["prompt"][-30:]
    'nswer>. User: 2+2?. Assistant:'
    >>> seen_prompt("x", {"prompt": "Hi", "template": "chat", "system": "Be brief."}, "messages")["prompt"]
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    """
    from r1cli.templates import render

    template = record["template"]
    try:
        prompt = render(record["prompt"], template, system=record.get("system"))
    except BadInput as exc:
        raise BadInput(f"{where}: {exc.message}", hint=exc.hint) from None
    if format == "messages" and isinstance(prompt, str):
        raise BadInput(f"{where}: --format messages, but the model saw a text prompt (template '{template}'): "
                       "chat turns would show the student another prompt",
                       hint="use --format completion (the text prompt as the model saw it), or roll out with "
                            "--template chat")
    out = {k: v for k, v in record.items() if k != "system"}  # the messages hold it now
    out["prompt"], out["template"] = prompt, ("none" if isinstance(prompt, str) else "chat")
    return out
