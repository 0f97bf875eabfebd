r"""The language-consistency reward (`language`) of DeepSeek-R1 (§2.3.2).

R1 adds, during reasoning-oriented RL, "the proportion of target language words in the CoT"
to the reward, to stop the chain of thought from mixing languages. Here:

1. The CoT is the <think> part (the whole completion when there are no think tags). Code blocks,
   inline code, LaTeX (``$…$``, ``$$…$$``, ``\(…\)``, ``\[…\]``, environments, ``\commands``) and
   numbers are dropped, and so are tokens that are math rather than language: one-letter words
   (variables), all-capital words of up to 4 letters (point labels, "ABC") and function names
   (sin, log, gcd…).
2. What remains is split by script: each Han character and each kana counts as one word (Chinese
   and Japanese are not space-separated); Latin, Cyrillic, Greek, Arabic, Hangul… words are
   letter runs.
3. Words in a script the target language does not use are off-target. Han counts for zh and ja,
   kana for ja, Hangul for ko, and so on. Scripts that many languages share (Latin, Cyrillic,
   Arabic, Devanagari) are judged by langdetect, seeded, on chunks of at least `segment_words`
   words (a sentence alone, or consecutive short sentences pooled): its labels on 2–3 word
   strings are noise ("so" → sv, "Let me verify" → no) and cost up to 35 ms each. A pool of
   fewer than 3 words is judged by its script alone. Past 64 × `segment_words` such words,
   chunks grow so that a text costs at most about 128 langdetect calls.

The prompt's language (when `language` is not given) is told by its dominant script, and by
langdetect for the shared scripts when the prompt has at least 4 words, else the default "en".
langdetect is unreliable on short prompts (a 5-word Russian question came out "uk"): pass
`language` when the target is known.

Cost: langdetect loads its profiles once per process (≈0.3–0.4 s), then ≈2 ms per chunk (more
for long chunks): ≈0.07 s for a 2,400-word English CoT, ≈0.2 s for 10,000 words (measured on
one CPU core). Non-Latin targets and off-script words cost microseconds. Chunk verdicts and
prompt languages are cached.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

from r1cli.rewards import RewardFn, register
from r1cli.templates import think_part

# langdetect's languages, by the script they are written in. Shared scripts are judged by langdetect.
_SCRIPT_LANGS = {
    "latin": "af ca cs cy da de en es et fi fr hr hu id it lt lv nl no pl pt ro sk sl so sq sv sw tl tr vi",
    "cyrillic": "bg mk ru uk",
    "arabic": "ar fa ur",
    "devanagari": "hi mr ne",
    "greek": "el",
    "hebrew": "he",
    "thai": "th",
    "bengali": "bn",
    "gujarati": "gu",
    "gurmukhi": "pa",
    "kannada": "kn",
    "malayalam": "ml",
    "tamil": "ta",
    "telugu": "te",
    "hangul": "ko",
}
SHARED_SCRIPTS = frozenset({"latin", "cyrillic", "arabic", "devanagari"})
# Bounds the langdetect cost of one text: past 64 chunks' worth of words, chunks grow.
MAX_DETECTIONS = 64
LANGUAGES = frozenset(" ".join(_SCRIPT_LANGS.values()).split()) | {"zh", "ja"}


def scripts_of(language: str) -> frozenset[str]:
    """The scripts whose words count for `language` (a langdetect code; zh/ja use Han).

    >>> sorted(scripts_of("ja")), sorted(scripts_of("en"))
    (['han', 'kana'], ['latin'])
    """
    if language == "zh":
        return frozenset({"han"})
    if language == "ja":
        return frozenset({"han", "kana"})
    return frozenset(script for script, langs in _SCRIPT_LANGS.items() if language in langs.split())


def normalize_language(code: str) -> str:
    """A language code as langdetect spells it: lower case, region dropped (zh-CN → zh, en-US → en)."""
    return code.strip().lower().replace("_", "-").split("-")[0]


# ---- cleaning and tokenising --------------------------------------------------------------

# Where code, LaTeX and tags start; `strip_noise` finds where each ends with str.find. (One regex
# with lazy `\\(.*?\\)` spans rescanned the rest of the text from every unclosed opener:
# 100 KB of "\\(" took 110 s.)
_OPENER = re.compile(r"```|`|\$\$|\$|\\\(|\\\[|\\begin\{(\w+\*?)\}|\\[A-Za-z]+|</?[A-Za-z]+>")
_INLINE_END = re.compile(r"[`\n]")


def strip_noise(text: str) -> str:
    r"""`text` with code, math, LaTeX commands and tags replaced by spaces, in one linear pass.

    Fenced code (an unclosed fence runs to the end), inline code, $$…$$ and $…$, \(…\) and
    \[…\], LaTeX environments, any other \command, and <tags>.

    >>> strip_noise(r"Let $x=2$, \(y\) and `z` <b>ok</b> \alpha.")
    'Let  ,   and    ok   .'
    """
    out, pos, n, absent = [], 0, len(text), set()

    def closing(closer: str, start: int) -> int:
        if closer in absent:
            return -1
        j = text.find(closer, start)
        if j < 0:  # none after `start`, so none after any later opener either
            absent.add(closer)
        return j

    while (m := _OPENER.search(text, pos)) is not None:
        i, token, end = m.start(), m.group(), m.end()
        if token == "```":
            j = closing("```", end)
            end = (n - 1 if text.endswith("\n") else n) if j < 0 else j + 3  # as a regex's `$` would
        elif token == "`":
            close = _INLINE_END.search(text, end)
            end = close.end() if close is not None and close.group() == "`" else -1
        elif token in ("$$", "$"):
            j = closing(token, end)
            end = j + len(token) if j >= 0 else i + 2 if token == "$$" else -1  # `$$` alone: empty $…$
        elif token in ("\\(", "\\["):
            j = closing("\\)" if token == "\\(" else "\\]", end)
            end = j + 2 if j >= 0 else -1
        elif m.group(1) is not None:
            j = closing(f"\\end{{{m.group(1)}}}", end)
            end = j + len(m.group(1)) + 6 if j >= 0 else i + 6  # unclosed: just the \begin command
        if end < 0:  # an opener that does not close is text
            out.append(text[pos : i + 1])
            pos = i + 1
            continue
        out.append(text[pos:i])
        out.append(" ")
        pos = end
    out.append(text[pos:])
    return "".join(out)


_TOKEN = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])"
    r"|(?P<kana>[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f])"
    r"|(?P<hangul>[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+)"
    r"|(?P<latin>[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]+"
    r"(?:['’][A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+)*)"
    r"|(?P<cyrillic>[\u0400-\u052f]+)"
    r"|(?P<greek>[\u0370-\u03ff\u1f00-\u1fff]+)"
    r"|(?P<arabic>[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]+)"
    r"|(?P<hebrew>[\u0590-\u05ff]+)"
    r"|(?P<devanagari>[\u0900-\u097f]+)"
    r"|(?P<indic>[\u0980-\u0dff]+)"
    r"|(?P<thai>[\u0e00-\u0e7f]+)"
    r"|(?P<other>[^\W\d_]+)"
    r"|(?P<stop>[.!?;。！？；]|\n)"
)
_MATH_WORDS = frozenset(
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp lim max min sup inf "
    "gcd lcm mod det tr deg dx dy dt".split()
)


def _is_math(script: str, word: str) -> bool:
    if script in ("latin", "greek", "cyrillic") and len(word) == 1:
        return True
    if script == "latin" and (word.lower() in _MATH_WORDS or (word.isupper() and len(word) <= 4)):
        return True
    return False


def words_by_sentence(text: str) -> list[list[tuple[str, str]]]:
    r"""The (script, word) pairs of `text`, sentence by sentence, with code, LaTeX, numbers and math tokens dropped.

    >>> words_by_sentence(r"Let $x=2$ so 答案 is 4. Да!")
    [[('latin', 'Let'), ('latin', 'so'), ('han', '答'), ('han', '案'), ('latin', 'is')], [('cyrillic', 'Да')]]
    """
    sentences: list[list[tuple[str, str]]] = [[]]
    for m in _TOKEN.finditer(strip_noise(text)):
        script, word = m.lastgroup or "other", m.group()
        if script == "stop":
            if sentences[-1]:
                sentences.append([])
            continue
        if script in ("indic", "other"):
            name = unicodedata.name(word[0], "OTHER")
            script = name.split()[0].lower()
        if not _is_math(script, word):
            sentences[-1].append((script, word))
    return [s for s in sentences if s]


# ---- langdetect, seeded and cached ---------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _factory() -> Any:
    from langdetect import detector_factory

    detector_factory.init_factory()
    return detector_factory._factory


@functools.lru_cache(maxsize=65536)
def detect(text: str) -> str | None:
    """langdetect's language for `text` (zh-cn/zh-tw → zh), seeded so that it is deterministic; None if no features.

    >>> detect("The derivative of the function is positive everywhere.")
    'en'
    """
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.seed = 0  # langdetect samples n-grams at random; a fixed seed makes it reproducible
    detector.append(text)
    try:
        return normalize_language(detector.detect())
    except LangDetectException:
        return None


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages: the last user message
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
    return ""


@functools.lru_cache(maxsize=4096)
def _prompt_language(text: str, default: str) -> str:
    counts: dict[str, int] = {}
    for sentence in words_by_sentence(text):
        for script, _ in sentence:
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return default
    script = max(counts, key=lambda s: counts[s])
    if script == "kana" or (script == "han" and counts.get("kana")):
        return "ja"
    if script == "han":
        return "zh"
    if script not in SHARED_SCRIPTS:
        langs = _SCRIPT_LANGS.get(script, "").split()
        return langs[0] if langs else default
    words = [w for s in words_by_sentence(text) for sc, w in s if sc == script]
    # langdetect needs a few words; short Latin prompts ("Compute", "Find all") are too short.
    found = detect(" ".join(words)) if len(words) >= 4 else None
    if found in LANGUAGES and script in scripts_of(found):
        return found
    return default if script in scripts_of(default) else _SCRIPT_LANGS[script].split()[0]


def prompt_language(prompt: Any, default: str = "en") -> str:
    """The language of a prompt (text, or chat messages: the last user message); `default` if unclear.

    >>> prompt_language("求函数的最小值。")
    'zh'
    >>> prompt_language([{"role": "user", "content": "Quelle est la somme des angles d'un triangle ?"}])
    'fr'
    """
    return _prompt_language(_text_of(prompt), default)


def language_share(text: str, target: str, segment_words: int = 8) -> float | None:
    """The share of `text`'s words that are in `target` (see the module docstring); None if it has no words.

    >>> language_share("Let me think. 所以 the answer is 4.", "en")
    0.75
    >>> language_share("所以答案是四", "zh"), language_share("$x^2$ 42", "en") is None
    (1.0, True)
    """
    on_scripts = scripts_of(target)
    sentences = words_by_sentence(text)
    shared = sum(script in on_scripts and script in SHARED_SCRIPTS for sentence in sentences for script, _ in sentence)
    # At most MAX_DETECTIONS langdetect calls per text: longer texts get longer chunks.
    segment_words = max(segment_words, -(-shared // MAX_DETECTIONS))
    total = on = 0
    chunk: list[str] = []

    def judge(words: list[str]) -> int:
        # Fewer words than langdetect can label reliably: the script alone decides.
        if len(words) < 3:
            return len(words)
        return len(words) if detect(" ".join(words)) == target else 0

    for sentence in sentences:
        judged = [word for script, word in sentence if script in on_scripts and script in SHARED_SCRIPTS]
        total += len(sentence)
        on += sum(script in on_scripts and script not in SHARED_SCRIPTS for script, _ in sentence)
        # A long sentence is judged alone; short ones are pooled until the pool is long enough.
        if len(judged) >= segment_words and chunk:
            on += judge(chunk)
            chunk = []
        chunk.extend(judged)
        if len(chunk) >= segment_words:
            on += judge(chunk)
            chunk = []
    if chunk:
        on += judge(chunk)
    return on / total if total else None


@register("language")
def language_reward(language: str | None = None, segment_words: int = 8) -> RewardFn:
    """R1's language-consistency reward: the proportion of the CoT's words in the target language (0.0–1.0).

    `language`: a langdetect code (en, fr, zh, ja, ko, ru…); None (default) uses the language of
    the record's `prompt`, "en" when it cannot be told. `segment_words`: the fewest words per
    langdetect call for Latin/Cyrillic/Arabic/Devanagari text. None when the CoT has no words.

    >>> lang = language_reward("en")
    >>> lang("<think>First, add the two numbers together carefully.</think><answer>4</answer>")
    1.0
    >>> lang("<think>首先把两个数相加</think><answer>4</answer>")
    0.0
    """
    target = None if language is None else normalize_language(language)
    if target is not None and target not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; choose from: {', '.join(sorted(LANGUAGES))}")
    if segment_words < 1:
        raise ValueError(f"segment_words must be at least 1, got {segment_words}")

    def reward(completion: str, prompt: Any = None, **_: Any) -> float | None:
        cot = think_part(completion)
        return language_share(completion if cot is None else cot, target or prompt_language(prompt), segment_words)

    return reward
