r"""Template-compliance rewards: `format` (all or nothing) and `tags` (partial credit per tag).

The R1-Zero template (DeepSeek-R1 paper, Table 1) asks for the reasoning in <think> </think>
followed by the answer in <answer> </answer>. Prompts that already end with "<think>" (the
DeepSeek-R1 chat template, or `--template r1-zero` with a prefilled tag) yield completions
without the opening tag; both rewards count that tag as present when the record's prompt ends
with it, or when the record's `prefill` (`r1 rollout --prefill`) holds it.

**A block must hold something.** The template shows its own example, ``<think> reasoning process
here </think> <answer> answer here </answer>``, and a policy under RL learns to copy it: an
R1-Zero run on SmolLM2 earned format 1.0 and tags 1.0 from step ~39 with every completion
``</think> <answer> answer here </answer>`` (examples/r1-mini/results-r1-generation). Once the
template's words scored 0, the next run wrote ``computation here`` in both blocks
(examples/r1-mini/results-reward-rules). So a think or answer block without content scores as
no block: `format` 0.0, and the block's two tags earn `tags` nothing. No content is (`placeholder`):
empty or only punctuation; only the words of r1's templates' examples and the words that frame a
placeholder ("your", "final", "the"…); a phrase of at most five words ending in "here"; the words
of an example block of the record's prompt or `system` (two or more words, no digits: a
one-word example may be a real answer). And, in `_empty_blocks`: a think block that says only
what the answer block says or copies the question (the third run's drift: `Compute 1 + 8 / 4
</think> <answer> 1 + 8 / 4 </answer>`, examples/r1-mini/results-class-rules), and, for a math
record whose gold `answer` is a number, an answer block with no digit and no TeX (words are no
answer to "Compute 6 + 6.", "twelve" included).
"""

from __future__ import annotations

import re
from typing import Any

from r1cli.rewards import RewardFn, register
from r1cli.templates import question_texts

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_BLOCKS = (("<think>", "</think>"), ("<answer>", "</answer>"))
_EXAMPLE = re.compile(r"<(think|answer)>(.*?)</\1>", re.DOTALL)
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[-+*/×÷^()<>]")  # words, numbers and the symbols of an expression; "=", "?", ". " are not
# the examples of r1's own templates (r1cli.templates.R1_ZERO), and words that only frame them
_PLACEHOLDER_WORDS = frozenset(
    "reasoning process here answer "
    "your my the final step by thinking thoughts thought think solution steps goes put write "
    "insert text content response output result".split())
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


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(text))


def _examples(prompt: Any, system: Any) -> frozenset[tuple[str, ...]]:
    """The words of each example block of two or more words, without digits, in the prompt's texts
    and `system` (a one-word example may be a real answer: a few-shot prompt's `<answer>yes</answer>`)."""
    found = set()
    for text in question_texts(prompt, system):
        if "</" in text:
            for m in _EXAMPLE.finditer(text):
                words = _words(m.group(2))
                if len(words) >= 2 and not any(c.isdigit() for c in m.group(2)):
                    found.add(words)
    return frozenset(found)


def placeholder(content: str, examples: frozenset[tuple[str, ...]] = frozenset()) -> bool:
    """Whether a block's content is no content: empty, punctuation only, only placeholder words
    (r1's templates' example words and their framing words), or the words of one of `examples`.

    >>> [placeholder(c) for c in ("", " ... ", "answer here", "Your final answer", "computation here", "4", "A", "∞")]
    [True, True, True, True, True, False, False, False]
    >>> placeholder("The sum.", frozenset({("the", "sum")})), placeholder("sum", frozenset({("the", "sum")}))
    (True, False)
    """
    text = content.strip()
    if not text:
        return True
    words = _words(text)
    if not words:
        return all(c in ".…?!_-*·,;:'\"`~" or c.isspace() for c in text)
    if words in examples or all(w in _PLACEHOLDER_WORDS for w in words):
        return True
    return len(words) <= 5 and words[-1] == "here"  # "computation here", "the working goes here"


def copied(content: str, texts: list[str]) -> bool:
    """Whether a think block only copies the question, or a piece of it: its words, numbers and
    operators stand in that order in one of `texts` (case, spacing and other punctuation aside).

    >>> q = ["Compute 1 + 8 / 4."]
    >>> [copied(t, q) for t in (" Compute 1 + 8 / 4 ", "compute 1+8/4 = ?", "8 / 4", "8/4 = 2, so 1 + 2 = 3")]
    [True, True, True, False]
    >>> copied("5 is larger", ["Which is larger, 3 or 5?"]), copied("...", q)
    (False, False)
    """
    tokens = tuple(t.casefold() for t in _TOKEN.findall(content))
    if not tokens:
        return False
    n = len(tokens)
    for text in texts:
        shown = tuple(t.casefold() for t in _TOKEN.findall(text))
        if any(shown[i:i + n] == tokens for i in range(len(shown) - n + 1)):
            return True
    return False


def _contents(text: str) -> dict[str, str]:
    """The content of each complete block (one of each of its tags, in order), by opening tag."""
    out = {}
    for open_tag, close_tag in _BLOCKS:
        start, end = text.find(open_tag), text.find(close_tag)
        if start != -1 and end > start and text.count(open_tag) == 1 and text.count(close_tag) == 1:
            out[open_tag] = text[start + len(open_tag):end]
    return out


def _not_a_number(content: str, record: dict[str, Any]) -> bool:
    """Whether a math record's gold is a number and the answer block holds no digit and no TeX: not an answer."""
    gold, task = record.get("answer"), record.get("task")
    if gold is None or task not in (None, "math") or any(c.isdigit() or c == "\\" for c in content):
        return False
    from r1cli.verifiers._shortcuts import is_number

    return is_number(str(gold))


def _empty_blocks(text: str, prompt: Any, system: Any, record: dict[str, Any]) -> list[tuple[str, str]]:
    """The complete think and answer blocks whose content is no content.

    Besides `placeholder`: a think block that says only what the answer block says, or only copies
    the question (`copied`), is no reasoning, and against a number (a math record's gold) an answer
    block without a digit or TeX is no answer.
    """
    contents = _contents(text)
    if not contents:
        return []
    examples = _examples(prompt, system)
    think, answer = contents.get("<think>"), contents.get("<answer>")
    found = []
    if think is not None and (placeholder(think, examples) or (answer is not None and _words(think) == _words(answer))
                              or copied(think, question_texts(prompt, system))):
        found.append(_BLOCKS[0])
    if answer is not None and (placeholder(answer, examples) or _not_a_number(answer, record)):
        found.append(_BLOCKS[1])
    return found


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
    >>> fmt("<think> reasoning process here </think> <answer> answer here </answer>")
    0.0
    """

    def reward(completion: str, prompt: Any = None, prefill: Any = None, system: Any = None, **record: Any) -> float:
        text = with_prefilled_think(completion, prompt, prefill)
        if not strict and "<think>" not in text and "</think>" in text:
            text = "<think>" + text
        if not _one_each(text):
            return 0.0
        pattern = _STRICT if strict else _LENIENT
        if not pattern.fullmatch(text) or _empty_blocks(text, prompt, system, record):
            return 0.0
        return 1.0

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
    >>> tags("<think>x</think><answer> answer here </answer>"), tags("<think></think>4")
    (0.5, 0.0)
    """

    def reward(completion: str, prompt: Any = None, prefill: Any = None, system: Any = None, **record: Any) -> float:
        text = with_prefilled_think(completion, prompt, prefill)
        empty = {tag for block in _empty_blocks(text, prompt, system, record) for tag in block}
        return 0.25 * sum(text.count(tag) == 1 and tag not in empty for tag in _TAGS)

    return reward
