r"""The `math` verifier: math-verify's extraction and equivalence, with guards against its false positives.

**Extraction** (`extract`, by strictness mode; see docs/verifiers.md). The <answer> tag's
content, else (``boxed``, ``any``) the \boxed{} after the reasoning, else (``any``) GSM8K's
``#### 18`` or ``A: 18`` final line, else the text after the reasoning. Text that is not a bare
expression goes through math-verify's own extraction (`LatexExtractionConfig` and
`ExprExtractionConfig`, the priorities of ``math_verify.parse``: "final answer is" phrases and
boxes first, then "answer:", then the rightmost LaTeX or number expression). Several boxes
become one set, as math-verify joins them. `pred` is the extracted answer written out so that
parsing it again gives the same value (``28 percent`` → ``28\%``), with the equation chain or
the list of values it ends (``x = 4 = 3``, ``1 or 2 or 3``), so that the judge sees what the
text asserts.

**Judging** (`judge`): ``verify(parse(gold), parse(pred))``, and

- integer and integer-fraction literals are compared exactly, without math-verify;
- an equation chain must hold: every constant side equal to the last (``x = 4 = 3`` → 0);
- decimals are rounded relative to their magnitude (math-verify rounds to 6 places, so that
  0.0000001 = 0.0000004): 6 places past the first significant digit of the smallest number;
- inequalities compare with intervals (``-2 < x < 2`` = ``(-2, 2)``);
- answers math-verify would stall on (`_guards.stall_reason`) are compared as text;
- answers that equal the gold without solving the question are wrong (`_shortcuts`): arithmetic
  left undone against a number (``2 + 3`` for ``5``), and the question's own expression.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from itertools import groupby
from typing import Any

from r1cli.templates import last_boxed
from r1cli.verifiers import Extraction, Mode, Verdict, after_think, the_answer_tag
from r1cli.verifiers._guards import TIMEOUT_S, math_verify_timeout, same_text, stall_reason
from r1cli.verifiers._shortcuts import is_number, restated, undone_arithmetic

# A predicted answer this much longer than the gold (and over 1,000 characters) is judged wrong
# unparsed: math-verify would spend its whole timeout on it, for a False verdict anyway.
_MAX_PRED_CHARS = 1000
_MAX_PRED_RATIO = 10
# math-verify's extraction reads only the end of a long text: its "final answer" patterns look
# 50–100 characters around the anchor, and a final answer is at the end. 1 MB of text: ~1 s.
_MAX_SCAN = 4000

_MATH_DELIMITED = re.compile(r"\\boxed|(?<!\\)\$|\\\(|\\\[")
# Spellings math-verify 0.9 misreads: "1\,000" (thin-space digit groups) parses as 1*0,
# "42." as a bare string, "30°" not at all, \varnothing as a symbol named varnothing, and
# "1e3" as 1*e*3 (Euler's number).
_FIXES = (
    (re.compile(r"(?<=\d)\\[,!;: ](?=\d{3}(?!\d))"), ""),
    (re.compile(r"(?<=\d)\s*°"), r"^{\\circ}"),
    (re.compile(r"\\varnothing\b"), r"\\emptyset"),
    (re.compile(r"(?<![.\\])\.\s*$"), ""),
    (re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])"), r"\1\\times10^{\2}"),
)


def _fixed(text: str) -> str:
    for pattern, replacement in _FIXES:
        text = pattern.sub(replacement, text)
    return text


def _latex(text: str) -> str:
    r"""`text` as math-verify input: bare answers ("033", "1/2", "5 cm", "x=3") are put in \boxed{}.

    >>> _latex("1\\,000."), _latex("The answer is $5$")
    ('\\boxed{1000}', 'The answer is $5$')
    """
    text = _fixed(text)
    if _MATH_DELIMITED.search(text):
        return text
    return "\\boxed{" + text + "}"


# ---- extraction -------------------------------------------------------------------------------

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_JOINERS = {"and", "or"}
_GSM8K_LINE = re.compile(r"^[ \t]*####[ \t]*(\S.*?)[ \t]*$", re.MULTILINE)
_ANSWER_LINE = re.compile(r"^[ \t]*(?:A|Answer|Final answer)[ \t]*:[ \t]*(\S.*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
# The equation chain an expression ends: constants, operators, "=", and one variable before an "=".
_CHAIN_TAIL = re.compile(r"(?:(?<![A-Za-z\\])[A-Za-z]\s*(?==)|[-+*/^()\d.\s×÷=]|\\cdot|\\times)*$")
# The list of values an expression ends ("1, 2 or " before the "3") or starts (" or 4" after the "3").
_LIST_TAIL = re.compile(r"(?:-?\d+(?:\.\d+)?\s*(?:,|\bor\b|\band\b)\s*)+$")
_LIST_HEAD = re.compile(r"(?:[ \t]*(?:,|\bor\b|\band\b)[ \t]*-?\d+(?:\.\d+)?(?![\d.]*[ \t]*[A-Za-z]{3}))+")
_VALUE_GROUPS = ("expr", "integer1", "integer2", "integer3", "decimal1", "decimal2", "decimal3")


def bare(text: str) -> bool:
    r"""Whether `text` is one bare expression (parsed whole) rather than prose to extract from.

    >>> bare("x = 3"), bare("5 cm"), bare("1 or 2 or 3"), bare(r"\text{Evelyn}"), bare("The answer is 5")
    (True, True, True, True, False)
    """
    if "\n" in text.strip() or _MATH_DELIMITED.search(text):
        return False
    return all(w.lower() in _JOINERS for w in _WORD.findall(_TEXT_CMD.sub(" ", text)))


@functools.lru_cache(maxsize=2)
def _pattern_groups(boxed_only: bool) -> list[list[tuple[Any, Any]]]:
    """math-verify's extraction regexes for `parse`'s default targets, grouped by priority."""
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig, get_extraction_regexes

    targets = get_extraction_regexes((LatexExtractionConfig(), ExprExtractionConfig()))
    found = [(prio, pattern, target) for patterns, target in targets for pattern, prio in patterns
             if not boxed_only or (isinstance(target, LatexExtractionConfig) and "boxed" in pattern.pattern)]
    found.sort(key=lambda x: x[0])
    return [(prio, [(p, t) for _, p, t in group]) for prio, group in groupby(found, key=lambda x: x[0])]


# math-verify's weakest anchor (priority 200) is the word "answer" anywhere within 50 characters
# before the value: "To find the answer, we add 7 and 8 to get 15" gives 7. It is kept only
# when the value follows the word directly ("answer 15", "answer is $15$", "answer = 15").
_LOOSE_ANSWER = 200
_ANSWER_GAP = re.compile(r"(?is)answer\s*(?:\*\*)?\s*(?:is|was|=|:)?\s*(?:\*\*)?\s*(?:\$\$?|\\\(|\\\[)?\s*")


def _value_start(m: re.Match[str]) -> int:
    starts = [m.start(k) for k, v in m.groupdict().items() if v and ("latex" in k or k in _VALUE_GROUPS)]
    return min(starts) if starts else m.start()


def _find(text: str, boxed_only: bool) -> str | None:
    """math-verify's ``extract_target_from_pred`` (priority groups, rightmost match first, the
    first that parses), keeping the match so that the answer can be written out whole."""
    from math_verify.parser import ExprExtractionConfig, extract_match

    for priority, group in _pattern_groups(boxed_only):
        matches = sorted(((m, t) for p, t in group for m in p.finditer(text)),
                         key=lambda x: (x[0].end(), -x[0].start()), reverse=True)
        for m, target in matches:
            if priority == _LOOSE_ANSWER and not _ANSWER_GAP.fullmatch(text, m.start(), _value_start(m)):
                continue
            value, written = extract_match(m, target)
            if value is None:
                continue
            percent = any(k.endswith("percent") and v for k, v in m.groupdict().items())
            if percent:
                return written + "\\%" if " and " not in written else written
            if isinstance(target, ExprExtractionConfig):
                return _widen(text, m, written)
            _remember(written, value)
            return written
    return None


def _widen(text: str, m: re.Match[str], written: str) -> str:
    """An expression match with the equation chain or list of values it ends, from its line."""
    start = next((m.start(g) for g in _VALUE_GROUPS if m.groupdict().get(g)), m.start())
    line_start = text.rfind("\n", 0, start) + 1
    left = text[max(line_start, start - 200):start]
    tail = (_CHAIN_TAIL.search(left) or m).group(0).strip() if "=" in left else ""
    if tail.endswith("="):
        chain = tail.lstrip(")=*/^+.× ")
        if chain and chain != "=":
            return f"{chain} {written}"
    listed = _LIST_TAIL.search(left)
    end = max(m.end(g) for g in _VALUE_GROUPS if m.groupdict().get(g))
    following = _LIST_HEAD.match(text, end)
    if listed or following:
        return (listed.group(0) if listed else "") + written + (following.group(0) if following else "")
    return written


# Values math-verify parsed while extracting, by the LaTeX written out: the judge would parse the
# same string again (a LaTeX parse: 3–10 ms). Bounded; cleared when full.
_EXTRACTED: dict[str, Any] = {}
_MAX_EXTRACTED = 4096


def _remember(written: str, value: Any) -> None:
    if len(_EXTRACTED) >= _MAX_EXTRACTED:
        _EXTRACTED.clear()
    _EXTRACTED[written] = value


def _mv_extract(text: str, boxed_only: bool, timeout: int) -> str | None:
    """`_find` under math-verify's timeout; None when it finds nothing or runs out of time."""
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout as mv_timeout

    text = text[-_MAX_SCAN:]
    with math_verify_timeout(timeout) as limit:
        try:
            return mv_timeout(timeout_seconds=limit)(_find)(text, boxed_only)
        except TimeoutException:
            return None
        except Exception:  # a parse that raises inside math-verify's own extraction: nothing found
            return None


def _from_answer(content: str, timeout: int) -> str | None:
    r"""The answer an <answer> tag holds: its one \boxed{}, itself when bare, else extracted from it."""
    if not content:
        return None
    if len(_BOX.findall(content)) == 1 and last_boxed(content) is not None:
        return last_boxed(content)
    if bare(content):
        return content
    return _mv_extract(content, False, timeout) or content


def extract_math(completion: str, mode: Mode = "any", timeout: int = TIMEOUT_S) -> Extraction:
    r"""The final answer of a math completion under strictness `mode`.

    >>> [extract_math(t).pred for t in ("<answer>x = 3</answer>", r"so \boxed{1}, \boxed{2}", "She has 5.\n#### 5")]
    ['x = 3', '1,2', '5']
    >>> extract_math("The final answer is $12$.", "boxed").pred is None
    True
    >>> extract_math("<answer>1</answer><answer>2</answer>").why
    '2 different <answer> tags'
    """
    tag, why = the_answer_tag(completion)
    if why is not None:
        return Extraction(None, why)
    if tag is not None:
        return Extraction(_from_answer(tag, timeout))
    if mode == "tag":
        return Extraction(None)
    region = after_think(completion)
    if not region.strip():
        # Nothing after the reasoning (or it never closed): a \boxed{} in it is still a final answer.
        return Extraction(last_boxed(completion))
    boxes = len(_BOX.findall(region))
    if boxes == 1 and last_boxed(region) is not None:
        return Extraction(last_boxed(region))
    if boxes:
        found = _mv_extract(region, mode == "boxed", timeout)
        if found is not None or mode == "boxed":
            return Extraction(found)
    if mode == "boxed":
        return Extraction(None)
    for pattern in (_GSM8K_LINE, _ANSWER_LINE):
        line = None
        for line in pattern.finditer(region[-_MAX_SCAN:]):
            pass
        if line is not None:
            content = line.group(1)
            return Extraction(_mv_extract(content, False, timeout) or (content if bare(content) else None))
    return Extraction(_mv_extract(region, False, timeout))


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def last_number(text: str) -> str | None:
    """The last number in the text after the reasoning (commas dropped), or None.

    >>> last_number("<think>2+2=5?</think> So she has 1,234 apples.")
    '1234'
    """
    found = _NUMBER.findall(after_think(text))
    return found[-1].replace(",", "") if found else None


# ---- judging ----------------------------------------------------------------------------------
# math-verify's LaTeX parse costs ~3 ms per distinct answer (and per gold, in every worker), and
# two integer (or integer-fraction) literals are equal for it exactly when their values are.
# Decimals are left to it, but for those with only zeros after the point.
_INTEGER = re.compile(r"(-?)(\d{1,1000})(?:\.0*)?")
_FRACTION = re.compile(r"(-?)\\[dt]?frac\{(-?\d{1,1000})\}\{(-?\d{1,1000})\}")


def _literal(answer: str) -> Fraction | None:
    r"""The value of an integer ("033", "-12.00", "$12$", "12.") or \frac{a}{b} of integers; None for anything else.

    >>> _literal("$-12.00$"), _literal(r"\dfrac{24}{2}"), _literal("12.5"), _literal(r"\frac{1}{0}")
    (Fraction(-12, 1), Fraction(12, 1), None, None)
    """
    text = answer.strip()
    if text[:1] == "$" and text[-1:] == "$":
        text = text[1:-1].strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    m = _INTEGER.fullmatch(text)
    if m:
        return Fraction(int(m.group(1) + m.group(2)))
    m = _FRACTION.fullmatch(text)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


def _parse(text: str, timeout: int) -> list[Any]:
    from math_verify import parse

    if text in _EXTRACTED:
        return [_EXTRACTED[text], text]

    with math_verify_timeout(timeout) as limit:
        return parse(_latex(text), parsing_timeout=limit)


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout: int = TIMEOUT_S) -> tuple[Any, ...] | None:
    """math-verify's parse of a gold answer; () when it is judged as text; None when it does not parse."""
    if stall_reason(_fixed(gold)) is not None:
        return ()
    value = _literal(gold)
    if value is not None:  # what math-verify parses it to, without its ~5–30 ms LaTeX parse
        import sympy

        return sympy.Rational(value.numerator, value.denominator), gold
    parsed = _parse(gold, timeout)
    # math-verify falls back to the raw string when LaTeX parsing fails ("\frac{" → ["{\frac{"]):
    # a gold answer without any parsed expression cannot be judged.
    if not any(not isinstance(p, str) for p in parsed):
        return None
    return tuple(parsed)


def _rounding(values: list[Any]) -> int:
    """Decimal places to round to: 6 past the first significant digit of the smallest nonzero
    number in `values` (math-verify's fixed 6 places make 0.0000001 equal 0.0000004)."""
    import sympy

    smallest = math.inf
    for value in values:
        if isinstance(value, sympy.Basic):
            for atom in value.atoms(sympy.Number):
                if atom.is_finite and atom != 0:
                    smallest = min(smallest, abs(float(atom)))
    if not 0 < smallest < 0.1:
        return 6
    return 6 + min(40, math.ceil(-math.log10(smallest)) - 1)


class _Timeout(Exception):
    """math-verify ran out of time comparing two answers."""


def _equal(gold: list[Any], pred: list[Any], timeout: int) -> bool:
    """Whether any gold parse equals any prediction parse (math-verify's `verify`), with
    magnitude-relative rounding and intervals comparable with inequalities; _Timeout if it ran out."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    places = _rounding([*gold, *pred])
    with math_verify_timeout(timeout) as limit:
        for g in gold:
            for p in pred:
                if isinstance(g, str) != isinstance(p, str):  # math-verify: never equal
                    continue
                if getattr(g, "is_Rational", False) and getattr(p, "is_Rational", False):
                    # Two exact numbers: equal exactly when their values are. math-verify would
                    # go on to sympy's simplify for a False (~20 ms) before saying so.
                    if g == p:
                        return True
                    continue
                try:
                    if verify(g, p, float_rounding=places, numeric_precision=max(15, places + 3),
                              allow_set_relation_comp=True, timeout_seconds=limit, raise_on_error=True):
                        return True
                except TimeoutException:
                    raise _Timeout from None
                except Exception:  # noqa: S112  a comparison sympy cannot make: not equal
                    continue
    return False


_EQUALS = re.compile(r"(?<![<>!:\\])=(?!=)")
_VARIABLE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]")


def _chain(pred: str, timeout: int) -> tuple[str, str | None]:
    r"""(the answer an equation chain states, None), or (pred, why) when the chain is false.

    ``x = 2 + 1 = 3`` states ``x = 3``; ``4 = 3`` is false. Systems and lists (commas) are
    left whole: ``a = 1, b = 2``.
    """
    if "=" not in pred or any(c in pred for c in ",;") or "\\pm" in pred:
        return pred, None
    sides = [s.strip() for s in _EQUALS.split(pred)]
    if len(sides) < 2 or not all(sides):
        return pred, None
    constants = [s for s in sides if not _VARIABLE.search(_TEXT_CMD.sub("", s))]
    if len(constants) < 2:
        return pred, None
    last = constants[-1]
    last_parsed = _parse(last, timeout)
    for side in constants[:-1]:
        side_parsed = _parse(side, timeout)
        if not last_parsed or not side_parsed or not _equal(side_parsed, last_parsed, timeout):
            return pred, f"the equation chain asserts {side} = {last}"
    return (last if sides[0] in constants else f"{sides[0]} = {last}"), None


_REVERSED = re.compile(r"\s*([^=<>]+?)\s*=\s*([A-Za-z])\s*")


def _variable_first(pred: str) -> str:
    """``3 = x`` as ``x = 3``: math-verify unwraps an assignment only with the variable on the left."""
    m = _REVERSED.fullmatch(pred)
    if m and not _VARIABLE.search(_TEXT_CMD.sub("", m.group(1))):
        return f"{m.group(2)} = {m.group(1)}"
    return pred


@functools.lru_cache(maxsize=65536)
def judge_math(gold: str, pred: str, timeout: int = TIMEOUT_S) -> tuple[bool | None, str | None]:
    r"""(whether `pred` equals `gold`, why it was refused); (None, …) when `gold` does not parse.

    Verdicts are cached (65,536 entries): the samples of a GRPO group repeat the same answers.

    >>> judge_math("3", "x = 4 = 3"), judge_math("3", "x = 3"), judge_math("0.0000004", "0.0000001")
    ((False, 'the equation chain asserts 4 = 3'), (True, None), (False, None))
    >>> judge_math("5", "2 + 3")
    (False, 'the answer 2 + 3 leaves the arithmetic undone')
    """
    gold_value = _literal(gold)
    if gold_value is not None:
        pred_value = _literal(pred)
        if pred_value is not None:
            return gold_value == pred_value, None
    if undone_arithmetic(pred) and is_number(gold):
        return False, f"the answer {pred} leaves the arithmetic undone"
    too_long = len(pred) > max(_MAX_PRED_CHARS, _MAX_PRED_RATIO * len(gold))
    stalls = None if too_long else stall_reason(_fixed(pred))
    # A literal gold parses: an answer refused unparsed costs no parse at all (the first parse in
    # a process compiles math-verify's extraction regexes: ~0.4 s).
    gold_parsed = _parse_gold(gold, timeout) if gold_value is None or not (too_long or stalls) else (gold,)
    if gold_parsed is None:
        return None, "the gold answer does not parse"
    if too_long:
        return False, f"the answer is {len(pred):,} characters long, the gold {len(gold):,}"
    if not gold_parsed or stalls is not None:
        if same_text(gold, pred):
            return True, None
        return False, None if stalls is None else f"not judged by math-verify: {stalls}"
    try:
        stated, false_chain = _chain(pred, timeout)
        if false_chain is not None:
            return False, false_chain
        pred_parsed = _parse(_variable_first(stated), timeout)
        if not pred_parsed:
            return False, None
        return _equal(list(gold_parsed), pred_parsed, timeout), None
    except _Timeout:
        return False, f"math-verify timed out after {timeout} s"


def math_equal(gold: str, pred: str, timeout: int = TIMEOUT_S) -> bool | None:
    r"""Whether `pred` is mathematically equivalent to `gold` (`judge_math`); None if `gold` does not parse.

    >>> math_equal("033", "33"), math_equal(r"\frac12", "0.5"), math_equal("1/2", "2")
    (True, True, False)
    >>> math_equal("", "3") is None, math_equal("12", "10^{10^{10^{10}}}")
    (True, False)
    """
    return judge_math(gold, pred, timeout)[0]


@functools.lru_cache(maxsize=1)
def warm_up() -> None:
    """Parse and compare one answer, so that math-verify's regexes and LaTeX parser are built.

    The first parse in a process costs 0.4–3 s (compiling math-verify's extraction regexes,
    building the LaTeX grammar's parser); done once where the reward is built, every scoring
    worker forked after it starts warm instead of paying it on its first record.
    """
    judge_math(r"\frac{1}{2}", "x = 0.5")
    judge_math(r"-\sqrt{2}", r"x^{2} + 1")  # a False verdict: math-verify's symbolic comparison too


# ---- the verifier -----------------------------------------------------------------------------


class MathVerifier:
    """Math answers against a gold `answer` (LaTeX or plain)."""

    task = "math"

    def __init__(self, timeout: int = TIMEOUT_S) -> None:
        self.timeout = timeout

    def needs(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return ("answer",)

    def extract(self, completion: str, record: Mapping[str, Any], mode: Mode) -> Extraction:
        return extract_math(completion, mode, self.timeout)

    def judge(self, extraction: Extraction, completion: str, record: Mapping[str, Any]) -> float | None:
        answer = record.get("answer")
        if answer is None or not str(answer).strip():
            return None
        gold = str(answer).strip()
        if _literal(gold) is None and _parse_gold(gold, self.timeout) is None:
            return None
        if extraction.why is not None:
            return Verdict(0.0, extraction.why)
        if extraction.pred is None:
            return 0.0
        verdict, why = judge_math(gold, extraction.pred, self.timeout)
        if verdict is None:
            return None
        if verdict and not same_text(gold, extraction.pred):
            question = restated(extraction.pred, record)
            if question is not None:
                return Verdict(0.0, f"the answer restates the question's {question}")
        return 1.0 if verdict else Verdict(0.0, why)


VERIFIER = MathVerifier()
