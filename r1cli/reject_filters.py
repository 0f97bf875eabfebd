r"""Readability and near-duplicate checks of `r1 reject-sample`: pure functions on text.

R1 (§2.3.3) filters its rejection-sampled data: "we have filtered out chain-of-thought with mixed
languages, long paragraphs, and code blocks". The paper gives no thresholds; these functions
measure, and `r1cli.reject_sampling.SelectPolicy` holds the thresholds:

- `mixed_share`: the share of the CoT's words outside its main script (or the target
  language's scripts). Words are cut as the language reward cuts them
  (`r1cli.rewards.language.words_by_sentence`: LaTeX, code, numbers and one-letter variables are
  left out); Han and kana count as one script, since Japanese mixes them.
- `longest_paragraph`: the most words in one paragraph (text between line breaks); each Han,
  kana or Hangul character counts as a word, since those scripts are not space-separated.
- `has_stray_code`: a fenced code block (```` ``` ```` or ``~~~``) in a completion whose task
  does not ask for code.
- `near_duplicates`: which texts of a group repeat an earlier one, exactly (whitespace aside)
  or nearly (Jaccard similarity of word-trigram sets ≥ a threshold). Pairwise, so
  O(group²) set intersections: 2,016 pairs for a group of 64.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from r1cli.templates import think_part

# Han and kana are one family: Japanese writes both in a sentence.
_FAMILY = {"han": "cjk", "kana": "cjk"}
_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A word: one CJK/Hangul character, or a run of other non-space characters.
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
# Near-duplicate tokens: one CJK character, or a run of letters/digits.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_ASCII_TOKEN = re.compile(r"\w+", re.ASCII)  # the same tokens on ASCII text, faster
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)


def cot_of(completion: str) -> str:
    """The chain of thought: the <think> part, or the whole completion when it has none.

    >>> cot_of("<think>add them</think><answer>4</answer>"), cot_of("just 4")
    ('add them', 'just 4')
    """
    cot = think_part(completion)
    return completion if cot is None else cot


def script_families(scripts: Collection[str]) -> frozenset[str]:
    """Scripts as families (Han and kana → cjk), for comparing a text's words with a language's scripts.

    >>> sorted(script_families({"han", "kana", "latin"}))
    ['cjk', 'latin']
    """
    return frozenset(_FAMILY.get(s, s) for s in scripts)


def mixed_share(text: str, allowed: Collection[str] | None = None) -> float:
    """The share of `text`'s words written outside the allowed script families (0.0–1.0).

    `allowed`: script families (`script_families(scripts_of("en"))`); None allows only the
    text's most frequent family. A text with no words scores 0.0.

    >>> mixed_share("Add the numbers, then 检查 the sum.")
    0.25
    >>> mixed_share("先把两个数相加。", allowed={"latin"}), mixed_share("$x^2 + 1$ = 42")
    (1.0, 0.0)
    """
    if text.isascii() and (allowed is None or "latin" in allowed):
        return 0.0  # ASCII letters are Latin: the common case costs one C call
    from r1cli.rewards.language import words_by_sentence

    counts: dict[str, int] = {}
    for sentence in words_by_sentence(text):
        for script, _ in sentence:
            family = _FAMILY.get(script, script)
            counts[family] = counts.get(family, 0) + 1
    total = sum(counts.values())
    if not total:
        return 0.0
    if allowed is None:
        on = max(counts.values())
    else:
        on = sum(n for family, n in counts.items() if family in allowed)
    return 1.0 - on / total


def longest_paragraph(text: str, limit: int | None = None) -> int:
    """The most words in one paragraph of `text` (paragraphs end at line breaks).

    With `limit`, counting may stop once a paragraph passes it (the result is then > limit but
    not exact): a wall of text costs no more than needed.

    >>> longest_paragraph("one two three\\n\\nfour five"), longest_paragraph("先把两个数相加")
    (3, 7)
    """
    longest = 0
    for paragraph in text.split("\n"):
        if len(paragraph) <= longest:
            continue  # a word is at least one character: it cannot be longer
        words = len(paragraph.split()) if paragraph.isascii() else sum(1 for _ in _WORD.finditer(paragraph))
        longest = max(longest, words)
        if limit is not None and longest > limit:
            break
    return longest


def has_stray_code(completion: str, task: str | None = None) -> bool:
    """True when a fenced code block (``` or ~~~ opening a line) appears in a completion whose task is not `code`.

    >>> has_stray_code("<think>try:\\n```python\\nprint(4)\\n```</think> 4")
    True
    >>> has_stray_code("```python\\nprint(4)\\n```", task="code"), has_stray_code("use `x` inline")
    (False, False)
    """
    if task == "code" or ("```" not in completion and "~~~" not in completion):
        return False
    return _FENCE.search(completion) is not None


# ---- duplicates --------------------------------------------------------------------------


def normalize(text: str) -> str:
    """`text` without whitespace: the exact-duplicate key (samples differ in spacing and line breaks).

    >>> normalize("<think>2 + 2</think>\\n\\n<answer>4</answer> ")
    '<think>2+2</think><answer>4</answer>'
    """
    return "".join(text.split())


def shingles(text: str, k: int = 3) -> frozenset[tuple[str, ...]]:
    """The set of `k`-token shingles of `text`, case folded (CJK characters are tokens of their own).

    A text of fewer than `k` tokens is one shingle.

    >>> sorted(shingles("The cat sat. The CAT", k=2))
    [('cat', 'sat'), ('sat', 'the'), ('the', 'cat')]
    """
    folded = text.casefold()
    tokens = _ASCII_TOKEN.findall(folded) if folded.isascii() else _TOKEN.findall(folded)
    if len(tokens) < k:
        return frozenset([tuple(tokens)])
    return frozenset(zip(*(tokens[i:] for i in range(k))))


def jaccard(a: Collection[object], b: Collection[object]) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets).

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    if not a and not b:
        return 1.0
    common = len(a & b) if isinstance(a, (set, frozenset)) else len(set(a) & set(b))
    return common / (len(a) + len(b) - common)


def near_duplicates(texts: Sequence[str], threshold: float | None = None, k: int = 3) -> list[str | None]:
    """For each text, "duplicate" or "near-duplicate" when it repeats an earlier text it is kept after, else None.

    Exact: the same text once whitespace is removed (`normalize`). Near (when `threshold` is
    given): word-`k`-gram Jaccard similarity ≥ `threshold` with an earlier text that was kept. Put the texts in order of
    preference: the first of a cluster is the one kept.

    >>> near_duplicates(["x = 4", "x  =  4", "the sum of two and two is four", "the sum of two and two is 4"], 0.6)
    [None, 'duplicate', None, 'near-duplicate']
    >>> near_duplicates(["the sum of two and two is four", "the sum of two and two is 4"])
    [None, None]
    """
    seen: set[str] = set()
    kept: list[frozenset[tuple[str, ...]]] = []
    out: list[str | None] = []
    for text in texts:
        key = normalize(text)
        if key in seen:
            out.append("duplicate")
            continue
        seen.add(key)
        if threshold is not None:
            mine = shingles(text, k)
            if any(jaccard(mine, other) >= threshold for other in kept):
                out.append("near-duplicate")
                continue
            kept.append(mine)
        out.append(None)
    return out
