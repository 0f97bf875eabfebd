"""Prompt templates, and parsing of <think>/<answer>/\\boxed{} in completions.

A template turns a prompt record's `prompt` into what an engine consumes: raw text (the engine
applies no template) or chat messages (the engine applies the tokenizer's chat template).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from r1cli.errors import BadInput

# DeepSeek-R1 paper, Table 1: the template used to train DeepSeek-R1-Zero.
R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user "
    "with the answer. The reasoning process and answer are enclosed within <think> </think> and "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>. User: {prompt}. Assistant:"
)

TEMPLATES = ("r1-zero", "chat", "none")


def check_template(name: str) -> str:
    """`name` if it is a template; else BadInput with the closest name.

    >>> check_template("r1zero")
    Traceback (most recent call last):
    r1cli.errors.BadInput: unknown template 'r1zero' (did you mean 'r1-zero'?)
    """
    if name not in TEMPLATES:
        close = did_you_mean(name, TEMPLATES)
        raise BadInput(f"unknown template '{name}'" + (f" (did you mean '{close}'?)" if close else ""),
                       hint=f"choose from: {', '.join(TEMPLATES)}")
    return name


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The choice `name` most likely misspells: same letters ignoring case and '-'/'_', a prefix
    of it (`smollm2` → `smollm2-135m`), or a close spelling; None when nothing is close.

    >>> did_you_mean("R1_Zero", ["r1-zero", "chat"]), did_you_mean("smollm2", ["smollm2-135m", "tiny"])
    ('r1-zero', 'smollm2-135m')
    >>> did_you_mean("qwen", ["smollm2-135m", "tiny"]) is None
    True
    """
    import difflib

    choices = list(choices)
    def squash(text: str) -> str:
        return re.sub(r"[-_ .]", "", text.lower())

    key = squash(name)
    if not key:
        return None
    for choice in choices:
        if squash(choice) == key:
            return choice
    prefixed = [c for c in choices if squash(c).startswith(key) and len(key) >= 3]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(key, [squash(c) for c in choices], n=1, cutoff=0.7)
    return next(c for c in choices if squash(c) == close[0]) if close else None


def _is_messages(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in prompt
    )


def question_texts(prompt: Any, system: Any = None) -> list[str]:
    """The texts a model was shown: the prompt (every message's content of a chat prompt) and `system`.

    >>> question_texts([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "x")
    ['Be brief.', '2+2?', 'x']
    """
    if isinstance(prompt, str):
        texts = [prompt]
    elif isinstance(prompt, list):
        texts = [m.get("content") for m in prompt if isinstance(m, dict)]
    else:
        texts = []
    return [t for t in [*texts, system] if isinstance(t, str) and t]


def render(prompt: str | list[dict[str, str]], template: str, *, system: str | None = None,
           prefill: str | None = None) -> str | list[dict[str, str]]:
    """Apply `template` to a prompt: text for `r1-zero`/`none`, chat messages for `chat`.

    `system` (chat only): None keeps the chat template's default system prompt, a string sets
    it, and '' sends an empty system message so that templates that insert a default (SmolLM2,
    Qwen2.5) do not.

    `prefill`: the start of the answer, written for the model (DeepSeek-R1 starts every answer
    with "<think>"). Text templates end with it (`r1-zero` after a space: "Assistant: <think>");
    chat prompts get it as a final assistant message, which engines continue rather than close.

    >>> render("What is 2+2?", "r1-zero").endswith("User: What is 2+2?. Assistant:")
    True
    >>> render("What is 2+2?", "r1-zero", prefill="<think>").endswith("2+2?. Assistant: <think>")
    True
    >>> render("Hi", "chat", system="Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    >>> render("Hi", "chat", prefill="<think>")[-1]
    {'role': 'assistant', 'content': '<think>'}
    """
    check_template(template)
    if template == "chat":
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        if system is not None:
            messages = [m for m in messages if m["role"] != "system"]
            messages.insert(0, {"role": "system", "content": system})
        if prefill:
            if messages[-1]["role"] == "assistant":
                raise BadInput("--prefill given, but the chat prompt already ends with an assistant message",
                               hint="drop --prefill, or the final assistant message from the records")
            messages.append({"role": "assistant", "content": prefill})
        return messages
    if system is not None:
        raise BadInput(f"--system applies to --template chat, not '{template}'")
    if not isinstance(prompt, str):
        raise BadInput(
            f"template '{template}' needs a text prompt, got chat messages",
            hint="use --template chat for records whose prompt is a list of messages",
        )
    if template == "r1-zero":
        text = R1_ZERO.format(prompt=_sentence(prompt))
        return f"{text} {prefill}" if prefill else text
    return prompt + prefill if prefill else prompt


def _sentence(prompt: str) -> str:
    """The prompt without its final full stop: the template adds one ("User: {prompt}. Assistant:").

    >>> _sentence(" Compute 2 + 3. "), _sentence("Is it 4?")
    ('Compute 2 + 3', 'Is it 4?')
    """
    text = prompt.strip()
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


# ---- parsing completions -------------------------------------------------------------

def think_part(text: str) -> str | None:
    """The reasoning inside the first <think>…</think>, or None.

    A completion produced from a prompt that ends in '<think>' has no opening tag; then the
    text before the first '</think>' is the reasoning.

    >>> think_part("<think> 2+2 is 4 </think><answer>4</answer>")
    '2+2 is 4'
    >>> think_part("2+2 is 4 </think> <answer>4</answer>")
    '2+2 is 4'
    >>> think_part("no tags") is None
    True
    """
    # str.find, not a lazy regex: `<think>` repeated without a closing tag made the regex
    # quadratic (seconds on 64 KB of model output)
    start = text.find("<think>")
    if start != -1:
        end = text.find("</think>", start + 7)
        return text[start + 7 : end].strip() if end != -1 else None
    if "</think>" in text:
        return text.split("</think>", 1)[0].strip()
    return None


def strip_think(text: str) -> str:
    """The text after the reasoning (everything after the last '</think>'), or the text itself.

    >>> strip_think("<think>hmm</think> The answer is 4.")
    'The answer is 4.'
    """
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    return text.strip()


def answer_part(text: str) -> str | None:
    """The content of the last <answer>…</answer>, or None.

    >>> answer_part("<think>x</think> <answer> 42 </answer>")
    '42'
    """
    end = text.rfind("</answer>")
    if end == -1:
        return None
    start = text.rfind("<answer>", 0, end)
    return text[start + 8 : end].strip() if start != -1 else None


_BRACES = re.compile(r"[{}]")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed\s+([^\s{$]+)")


def last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{…} (or \fbox{…}), with nested braces; None if absent or unbalanced.

    >>> last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    >>> last_boxed(r"\boxed{\frac{1}{2}") is None
    True
    >>> last_boxed(r"\boxed 5.")
    '5'
    """
    last = None
    for last in _BOXED.finditer(text):
        pass
    if last is None:
        return None
    if last.group(1) is not None:  # `\boxed 5`: no braces, the next token
        return last.group(1).rstrip(".,;")
    depth = 0
    for brace in _BRACES.finditer(text, last.end() - 1):  # braces only: 1 MB of text in ~5 ms
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[last.end() : brace.start()].strip()
    return None


def extract_final_answer(text: str) -> str | None:
    r"""The final answer of a completion: the <answer> part, else the last \boxed{}, else None.

    A \boxed{} inside the <answer> part is unwrapped.

    >>> extract_final_answer(r"<think>…</think><answer>\boxed{7}</answer>")
    '7'
    >>> extract_final_answer(r"so the answer is \boxed{3}.")
    '3'
    """
    ans = answer_part(text)
    if ans is not None:
        inner = last_boxed(ans)
        return inner if inner is not None else ans
    return last_boxed(text)


_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def gsm8k_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution (the text after '####', commas removed).

    >>> gsm8k_answer("She has 3 + 4 = 7 apples.\\n#### 1,234")
    '1234'
    """
    m = _GSM8K.search(solution)
    if not m:
        return None
    return m.group(1).strip().replace(",", "")
