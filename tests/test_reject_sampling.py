"""Rejection-sampling policies (r1cli.reject_sampling) and their pure checks (r1cli.reject_filters), as tables."""

import itertools

import pytest

from r1cli import reject_filters as f
from r1cli.errors import BadInput
from r1cli.reject_sampling import REASONS, SelectPolicy, SelectStats, _IdSet, drop_reason, grouped, select, select_group, sft_record

OK = "<think>Two plus two is four.</think><answer>4</answer>"
LONG = ("We start from two apples, add two more apples one at a time, count every apple in the basket "
        "again from the first to the last, and check the count twice")


def rec(completion=OK, accuracy=1.0, reward=None, **extra):
    record = {"id": "p", "prompt": "What is 2+2?", "completion": completion, "finish_reason": "stop",
              "completion_tokens": len(completion.split()), "rewards": {"accuracy": accuracy},
              "reward": accuracy if reward is None else reward}
    record.update(extra)
    return record


def reason(record, **policy):
    from r1cli.rewards import completion_text
    from r1cli.templates import strip_think

    p = SelectPolicy(**policy)
    text = completion_text(record["completion"])
    return drop_reason("f:1", record, text, text if p.keep_think else strip_think(text), p)


# ---- one record: the first failing check, in the order of REASONS -------------------------------

@pytest.mark.parametrize(("record", "policy", "expected"), [
    (rec(), {}, None),
    (rec(accuracy=0.0), {}, "incorrect"),
    (rec(accuracy=0.5), {}, "incorrect"),  # partial credit (code tests) is not correct
    (rec(accuracy=None), {}, "unverified"),  # null: could not be checked, never taken as correct
    (rec(accuracy=0.0), {"correct_only": False}, None),
    (rec(finish_reason="length"), {}, "truncated"),
    (rec(finish_reason="length"), {"drop_truncated": False}, None),
    (rec(finish_reason="length", accuracy=0.0), {}, "truncated"),  # the first reason counts
    ({k: v for k, v in rec().items() if k != "finish_reason"}, {}, None),  # no finish_reason: finished
    (rec(completion_tokens=100), {"max_tokens": 99}, "too-long"),
    (rec(completion_tokens=99), {"max_tokens": 99}, None),
    (rec(reward=0.5), {"min_reward": 1.0}, "low-reward"),
    (rec(reward=1.0), {"min_reward": 1.0}, None),
    (rec(reward=None) | {"reward": None}, {"min_reward": 0.0}, "no-reward"),
    (rec(completion=""), {}, "empty"),
    (rec(completion="<think>only thoughts</think>"), {"keep_think": False}, "empty"),
    (rec(completion="<think>only thoughts</think>"), {}, None),
    (rec(completion="<think>Try:\n```python\nprint(2+2)\n```\n</think> 4"), {}, "code-block"),
    (rec(completion="<think>Try:\n```python\nprint(2+2)\n```\n</think> 4"), {"drop_code_blocks": False}, None),
    (rec(completion="```python\nprint(2+2)\n```", task="code"), {}, None),
    (rec(completion="<think>\n" + "word " * 301 + "\n</think> 4"), {}, "long-paragraph"),
    (rec(completion="<think>\n" + "word " * 300 + "\n</think> 4"), {}, None),
    (rec(completion="<think>" + "word " * 200 + "\n" + "word " * 200 + "</think> 4"), {}, None),
    (rec(completion="<think>" + "word " * 301 + "</think> 4"), {"max_paragraph_words": None}, None),
    (rec(completion="<think>先把两个数相加 then check the sum twice.</think> 4"), {}, "mixed-language"),
    (rec(completion="<think>先把两个数相加 then check the sum twice.</think> 4"), {"max_mixed": None}, None),
    (rec(completion="<think>先把两个数相加，得到四。</think> 4"), {}, None),  # all Chinese: not mixed
    (rec(completion="<think>先把两个数相加，得到四。</think> 4"), {"language": "en"}, "mixed-language"),
    (rec(completion="<think>Let $x = 2$ so $x + x = 4$, as sin and cos agree.</think> 4"), {}, None),  # math is no language
    (rec(completion="<think>Zuerst addieren wir die beiden Zahlen und erhalten vier.</think> 4"),
     {"min_language": 0.9, "language": "en"}, "language"),
    (rec(completion="<think>First we add the two numbers together and we get four.</think> 4"),
     {"min_language": 0.9, "language": "en"}, None),
    (rec(completion="<think>Zuerst addieren wir die beiden Zahlen und erhalten vier.</think> 4"),
     {"min_language": 0.9}, "language"),  # target: the (English) prompt's language
    (rec(rewards={"accuracy": 1.0, "language": 0.5}), {"min_language": 0.9}, "language"),  # the scored value
    (rec(rewards={"accuracy": 1.0, "language": 0.95}), {"min_language": 0.9}, None),
    (rec(completion="<think>$2+2=4$</think> 4"), {"min_language": 0.9}, None),  # no words: no verdict
])
def test_drop_reason(record, policy, expected):
    assert reason(record, **policy) == expected


@pytest.mark.parametrize(("record", "policy", "field", "fix"), [
    ({"completion": OK}, {}, "rewards.accuracy", "r1 score -r accuracy"),
    ({"completion": OK, "rewards": {"format": 1.0}}, {}, "rewards.accuracy", "--no-correct-only"),
    ({"completion": OK, "rewards": None}, {}, "rewards.accuracy", "r1 score -r accuracy"),
    ({"completion": OK}, {"correct_only": False, "min_reward": 1.0}, "'reward'", "r1 score"),
    ({"completion": OK, "rewards": {"accuracy": 1.0}}, {"max_tokens": 10}, "completion_tokens", "--max-tokens"),
])
def test_a_missing_field_is_an_error_naming_it_and_the_fix(record, policy, field, fix):
    with pytest.raises(BadInput) as exc:
        reason(record, **policy)
    assert exc.value.message.startswith("f:1: ") and field in exc.value.message
    assert fix in exc.value.hint


def test_without_correct_only_unscored_records_pass():
    assert reason({"completion": OK}, correct_only=False) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_language": 1.5}, "min_language must be a share between 0 and 1"),
    ({"max_mixed": -0.1}, "max_mixed must be a share"),
    ({"near_threshold": 2.0}, "near_threshold must be a share"),
    ({"max_tokens": 0}, "max_tokens must be at least 1"),
    ({"max_per_prompt": 0}, "max_per_prompt must be at least 1"),
    ({"max_paragraph_words": 0}, "max_paragraph_words must be at least 1"),
    ({"min_reward": float("nan")}, "min_reward must be a finite number"),
    ({"dedup": "fuzzy"}, "dedup must be one of none, exact, near"),
    ({"format": "chatml"}, "format must be one of completion, messages"),
    ({"language": "klingon"}, "unsupported language 'klingon'"),
])
def test_policy_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectPolicy(**kwargs)


def test_policy_defaults_are_r1s_and_language_codes_are_normalised():
    p = SelectPolicy()
    assert (p.correct_only, p.drop_truncated, p.drop_code_blocks, p.dedup, p.keep_think, p.format) == (
        True, True, True, "exact", True, "completion")
    assert p.max_mixed is not None and p.max_paragraph_words is not None and p.max_per_prompt is None
    assert SelectPolicy(language="zh-CN").language == "zh"
    with pytest.raises(TypeError):
        SelectPolicy(True)  # keyword-only


# ---- a group ---------------------------------------------------------------------------------

def group_of(*records):
    return [(f"f:{i + 1}", {**r, "sample": i}) for i, r in enumerate(records)]


def kept_samples(group, **policy):
    stats = SelectStats()
    out = select_group(group, SelectPolicy(**policy), stats)
    return [r["sample"] for r in out], stats


@pytest.mark.parametrize(("records", "policy", "kept", "dropped"), [
    # exact repeats: the better one (higher reward, then shorter) stays, output in input order
    ([rec(reward=1.0), rec(completion=OK.replace("</think>", "</think>\n"), reward=2.0), rec()], {},
     [1], {"duplicate": 2}),
    ([rec(), rec()], {"dedup": "none"}, [0, 1], {}),
    # near repeats
    ([rec(f"<think>{LONG} so the total is four.</think> 4"), rec(f"<think>{LONG} so the sum is four.</think> 4"),
      rec("<think>Count on from two: three, four. The sum is four.</think> 4")],
     {"dedup": "near"}, [0, 2], {"near-duplicate": 1}),
    ([rec(f"<think>{LONG} so the total is four.</think> 4"), rec(f"<think>{LONG} so the sum is four.</think> 4")],
     {"dedup": "near", "near_threshold": 0.95}, [0, 1], {}),
    # max per prompt: by reward, then shortest (completion_tokens), then input order
    ([rec("<think>a b c d e f</think> 4", reward=1.0), rec("<think>a b</think> 4", reward=1.0),
      rec("<think>a b c d e f g h</think> 4", reward=2.0), rec("<think>x y</think> 4", reward=1.0)],
     {"max_per_prompt": 2}, [1, 2], {"max-per-prompt": 2}),
    ([rec("<think>a b c d e f</think> 4", reward=1.0), rec("<think>a b</think> 4", reward=1.0)],
     {"max_per_prompt": 1, "correct_only": False}, [1], {"max-per-prompt": 1}),
    # per-record drops come before the group's choices
    ([rec(accuracy=0.0), rec(finish_reason="length"), rec(), rec()], {"max_per_prompt": 1},
     [2], {"incorrect": 1, "truncated": 1, "duplicate": 1}),
    ([rec(accuracy=0.0), rec(accuracy=None)], {}, [], {"incorrect": 1, "unverified": 1}),
])
def test_select_group(records, policy, kept, dropped):
    samples, stats = kept_samples(group_of(*records), **policy)
    assert samples == kept
    assert dict(stats.dropped) == dropped
    assert (stats.groups_in, stats.groups_kept, stats.records_in, stats.records_kept) == (
        1, int(bool(kept)), len(records), len(kept))
    assert set(stats.dropped) <= set(REASONS)


def test_shortest_falls_back_to_characters_when_a_sample_lacks_completion_tokens():
    long, short = rec("<think>a much longer line of thought</think> 4"), rec("<think>short</think> 4")
    del short["completion_tokens"]
    samples, _ = kept_samples(group_of(long, short), max_per_prompt=1)
    assert samples == [1]


def test_strip_think_dedups_on_the_output_text():
    # different reasoning, same answer: as SFT data without the CoT they are the same sample;
    # the shorter completion is the one kept
    samples, stats = kept_samples(group_of(rec("<think>2 and 2 make 4</think> 4"), rec("<think>4 it is</think> 4")),
                                  keep_think=False)
    assert samples == [1] and stats.dropped == {"duplicate": 1}


# ---- output shapes -------------------------------------------------------------------------

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize(("prompt", "policy", "expected"), [
    ("What is 2+2?", {}, {"prompt": "What is 2+2?", "completion": OK}),
    ("What is 2+2?", {"keep_think": False}, {"prompt": "What is 2+2?", "completion": "<answer>4</answer>"}),
    ("What is 2+2?", {"format": "messages"}, {"messages": [
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": OK}]}),
    (CHAT, {"format": "messages", "keep_think": False}, {"messages": [
        *CHAT, {"role": "assistant", "content": "<answer>4</answer>"}]}),
    # TRL's conversational prompt-completion shape: a chat prompt's completion is a message list
    (CHAT, {}, {"prompt": CHAT, "completion": [{"role": "assistant", "content": OK}]}),
])
def test_output_shapes_keep_the_record_traceable(prompt, policy, expected):
    record = rec(prompt=prompt, answer="4", model="m")
    (out,) = select([("f:1", record)], SelectPolicy(**policy))
    shape = {k: v for k, v in out.items() if k in ("prompt", "completion", "messages")}
    assert shape == expected
    for key in ("id", "answer", "rewards", "reward", "finish_reason", "model"):
        assert out[key] == record[key]
    if "messages" in out:
        assert "prompt" not in out and "completion" not in out


def test_a_chat_completion_becomes_text():
    record = rec() | {"completion": [{"role": "assistant", "content": OK}]}
    (out,) = select([("f:1", record)], SelectPolicy())
    assert out["completion"] == OK


@pytest.mark.parametrize(("record", "message"), [
    ({"id": "p", "completion": OK, "rewards": {"accuracy": 1.0}}, "f:1: no 'prompt' field"),
    ({"id": "p", "prompt": "q", "rewards": {"accuracy": 1.0}}, "f:1: no 'completion' field"),
    ({"id": "p", "prompt": "q", "completion": 4, "rewards": {"accuracy": 1.0}}, "f:1: 'completion' must be text"),
    ({"id": "p", "prompt": 7, "completion": OK, "rewards": {"accuracy": 1.0}}, "f:1: 'prompt' must be text"),
    ({"completion": OK, "rewards": {"accuracy": 1.0}}, "f:1: no 'id' (nor 'prompt'"),
])
@pytest.mark.parametrize("format", ["completion", "messages"])
def test_malformed_records(record, message, format):
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        list(select([("f:1", record)], SelectPolicy(format=format)))


# ---- grouping and streaming -----------------------------------------------------------------

def located(ids):
    return [(f"f:{i + 1}", {**rec(), "id": rid, "sample": i}) for i, rid in enumerate(ids)]


@pytest.mark.parametrize(("ids", "groups", "error"), [
    ("aabbc", ["aa", "bb", "c"], None),
    ("abba", None, "f:4: id 'a' reappears after other groups"),
    ("aabca", None, "f:5: id 'a' reappears after other groups"),
    ("", [], None),
])
def test_grouping(ids, groups, error):
    if error:
        with pytest.raises(BadInput, match=error) as exc:
            list(grouped(located(ids)))
        assert "r1 rollout" in exc.value.hint
    else:
        assert ["".join(r["id"] for _, r in g) for g in grouped(located(ids))] == groups


def test_ids_are_derived_from_the_prompt_when_absent():
    records = [("f:1", {"prompt": "a"}), ("f:2", {"prompt": "a"}), ("f:3", {"prompt": "b"})]
    assert [len(g) for g in grouped(records)] == [2, 1]
    with pytest.raises(BadInput, match="f:4: id 'p-"):
        list(grouped([*records, ("f:4", {"prompt": "a"})]))


def test_id_set_grows_and_remembers_every_id():
    ids = _IdSet()
    assert all(ids.add(f"id-{i}") for i in range(5000))  # grows past its 1,024 first slots several times
    assert not any(ids.add(f"id-{i}") for i in range(0, 5000, 7))
    assert len(ids._slots) == 16384  # load ≤ 1/2: 8–16 bytes per id


def test_streaming_reads_no_further_than_the_next_group():
    consumed = []

    def endless():
        for i in itertools.count():
            for s in range(4):
                consumed.append(i)
                yield f"f:{4 * i + s}", {**rec(completion=f"<think>sample {s}</think> 4"), "id": f"g{i}", "sample": s}

    out = list(itertools.islice(select(endless(), SelectPolicy()), 6))
    assert [r["id"] for r in out] == ["g0"] * 4 + ["g1"] * 2
    assert max(consumed) == 2  # the group after the one being written: one group in memory


def test_stats_across_groups():
    stats = SelectStats()
    records = located("aab") + [("f:9", {**rec(accuracy=0.0), "id": "c"})]
    out = list(select(records, SelectPolicy(), stats))
    assert [r["id"] for r in out] == ["a", "b"]
    assert (stats.groups_in, stats.groups_kept, stats.records_in, stats.records_kept) == (3, 2, 4, 2)
    assert stats.dropped == {"duplicate": 1, "incorrect": 1}


# ---- the pure checks ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "allowed", "share"), [
    ("Add the numbers, then check the sum.", None, 0.0),
    ("Add the numbers, then 检查 the sum.", None, 0.25),
    ("Add the numbers, then 检查 the sum.", {"cjk"}, 0.75),
    ("先把两个数相加。", {"latin"}, 1.0),
    ("先把两个数相加。", None, 0.0),
    ("まず二つの数を足します。", None, 0.0),  # kana and Han: one family
    ("Сначала сложим числа, then add.", None, 0.4),
    ("$x^2 + 1 = 42$ and \\frac{1}{2}", None, 0.0),  # LaTeX and numbers are not words
    ("", None, 0.0),
    ("café naïve résumé", {"latin"}, 0.0),
])
def test_mixed_share(text, allowed, share):
    assert f.mixed_share(text, allowed) == pytest.approx(share)


@pytest.mark.parametrize(("text", "words"), [
    ("", 0),
    ("one two three", 3),
    ("one two\nthree", 2),
    ("one\n\n two three four \n five", 3),
    ("先把两个数相加", 7),
    ("先把 two 数", 4),
    ("word " * 1000, 1000),
])
def test_longest_paragraph(text, words):
    assert f.longest_paragraph(text) == words


def test_longest_paragraph_stops_counting_past_the_limit():
    assert f.longest_paragraph("a\n" + "word " * 50 + "\n" + "word " * 80, limit=40) > 40


@pytest.mark.parametrize(("text", "task", "stray"), [
    ("plain reasoning", None, False),
    ("```python\nprint(1)\n```", None, True),
    ("<think>x</think>\n  ~~~\ncode\n~~~", "math", True),
    ("inline ``` fence not at a line start", None, False),
    ("use `x` inline", None, False),
    ("```python\nprint(1)\n```", "code", False),
])
def test_has_stray_code(text, task, stray):
    assert f.has_stray_code(text, task) is stray


@pytest.mark.parametrize(("texts", "threshold", "verdicts"), [
    (["a b c", "a  b\nc", "a b d"], None, [None, "duplicate", None]),
    (["A B C D", "a b c d"], None, [None, None]),  # case matters for an exact repeat
    (["A B C D", "a b c d"], 0.9, [None, "near-duplicate"]),  # not for a near one
    (["one two three four five six", "one two three four five seven", "one two three four five six"], 0.5,
     [None, "near-duplicate", "duplicate"]),
    (["x", "y"], 0.0, [None, "near-duplicate"]),
    (["二加二等于四", "二加二等于五"], 0.5, [None, "near-duplicate"]),
    ([], 0.8, []),
])
def test_near_duplicates(texts, threshold, verdicts):
    assert f.near_duplicates(texts, threshold) == verdicts


@pytest.mark.parametrize(("a", "b", "sim"), [
    ("the cat sat on the mat", "the cat sat on the mat", 1.0),
    ("the cat sat on the mat", "a dog ran in the park", 0.0),
    ("the cat sat on the mat", "the cat sat on a mat", 2 / 6),
    ("hi", "hi", 1.0),
    ("", "", 1.0),
])
def test_shingle_jaccard(a, b, sim):
    assert f.jaccard(f.shingles(a), f.shingles(b)) == pytest.approx(sim)


@pytest.mark.parametrize(("policy", "field", "expected"), [
    ({}, "completion", "<think>2 and 2 make 4</think><answer>4</answer>"),
    ({"format": "messages"}, "messages", [{"role": "user", "content": "What is 2+2?"},
                                          {"role": "assistant", "content": "<think>2 and 2 make 4</think><answer>4</answer>"}]),
])
def test_a_prefill_becomes_part_of_the_completion(policy, field, expected):
    # `r1 rollout --prefill '<think>'`: the model wrote the rest; SFT data holds the whole answer
    record = rec("2 and 2 make 4</think><answer>4</answer>", prompt="What is 2+2?", prefill="<think>")
    (out,) = select([("f:1", record)], SelectPolicy(**policy))
    assert out[field] == expected and "prefill" not in out
