r"""Template-compliance rewards: `format` (all or nothing) and `tags` (partial credit per tag).

The R1-Zero template (DeepSeek-R1 paper, Table 1) asks for the reasoning in <think> </think>
followed by the answer in <answer> </answer>. Prompts that already end with "<think>" (the
DeepSeek-R1 chat template, or `--template r1-zero` with a prefilled tag) yield completions
without the opening tag; both rewards count that tag as present when the record's prompt ends
with it, or when the record's `prefill` (`r1 rollout --prefill`) holds it.
"""

from __future__ import annotations

import re
from typing import Any

from r1cli.rewards import RewardFn, register

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_STRICT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_LENIENT = re.compile(r".*?<think>(.*?)</think>\s*<answer>(.*?)</answer>.*", re.DOTALL)


def prompt_text(prompt: Any) -> str:
    """The prompt as text: a string, or the last message's content of a chat prompt.

    >>> prompt_text([{"role": "user", "content": "Hi"}])
    'Hi'
    """
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        content = prompt[-1].get("content")
        return content if isinstance(content, str) else ""
    return ""


def with_prefilled_think(completion: str, prompt: Any, prefill: Any = None) -> str:
    """The whole answer: a rollout's `prefill` (e.g. "<think>", written for the model) and the
    completion, or the completion with "<think>" restored when the rendered prompt ended with it.

    >>> with_prefilled_think("x</think>", "Assistant: <think>")
    '<think>x</think>'
    >>> with_prefilled_think(" x</think>", "Compute 2 + 3.", prefill="<think>")
    '<think> x</think>'
    """
    if isinstance(prefill, str) and prefill:
        return prefill + completion
    if "<think>" not in completion and prompt_text(prompt).rstrip().endswith("<think>"):
        return "<think>" + completion
    return completion


def _one_each(text: str) -> bool:
    return all(text.count(tag) == 1 for tag in _TAGS)


@register("format")
def format_reward(strict: bool = True) -> RewardFn:
    """1.0 if the completion follows the R1-Zero template <think>…</think><answer>…</answer>, else 0.0.

    Strict (default): exactly one of each tag, in that order, and nothing but whitespace outside.
    Lenient (`strict=False`): text may precede <think> and follow </answer>, and a missing
    opening <think> is accepted whenever the completion has "</think>" (the prompt may have
    ended with it). Follows TRL's `think_format_reward` and open-r1's `format_reward`, which
    match the same pattern with one regex; counting the tags first rejects nested blocks.

    >>> fmt = format_reward()
    >>> fmt("<think>2+2=4</think>\\n<answer>4</answer>")
    1.0
    >>> fmt("<think>a<think>b</think></think><answer>4</answer>")
    0.0
    >>> text = "Sure! <think>x</think><answer>4</answer>"
    >>> fmt(text), format_reward(strict=False)(text)
    (0.0, 1.0)
    """

    def reward(completion: str, prompt: Any = None, prefill: Any = None, **_: Any) -> float:
        text = with_prefilled_think(completion, prompt, prefill)
        if not strict and "<think>" not in text and "</think>" in text:
            text = "<think>" + text
        if not _one_each(text):
            return 0.0
        pattern = _STRICT if strict else _LENIENT
        return 1.0 if pattern.fullmatch(text) else 0.0

    return reward


@register("tags")
def tags_reward() -> RewardFn:
    """Partial credit for the R1-Zero tags: 0.25 per tag that occurs exactly once (0.0 to 1.0).

    Follows open-r1's `tag_count_reward`, minus its newline requirements ("<think>\\n",
    "\\n</think>\\n"…): any whitespace around the tags is accepted. A second think or answer
    block loses the credit of its tags.

    >>> tags = tags_reward()
    >>> tags("<think>x</think><answer>4</answer>"), tags("<think>x</think>4"), tags("4")
    (1.0, 0.5, 0.0)
    >>> tags("<think>a</think><think>b</think><answer>4</answer>")
    0.5
    """

    def reward(completion: str, prompt: Any = None, prefill: Any = None, **_: Any) -> float:
        text = with_prefilled_think(completion, prompt, prefill)
        return 0.25 * sum(text.count(tag) == 1 for tag in _TAGS)

    return reward
