import pytest

from r1cli.errors import BadInput
from r1cli.templates import (
    R1_ZERO, answer_part, extract_final_answer, last_boxed, render, strip_think, think_part,
)


def test_r1_zero_is_the_paper_template():
    text = render("  What is 2+2?  ", "r1-zero")
    assert text.startswith("A conversation between User and Assistant.")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in text
    assert text.endswith("User: What is 2+2?. Assistant:")
    assert R1_ZERO.count("{prompt}") == 1


def test_none_passes_text_through():
    assert render("raw text", "none") == "raw text"


@pytest.mark.parametrize(
    "system, want",
    [
        (None, [{"role": "user", "content": "hi"}]),
        ("Be brief.", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]),
        ("", [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}]),
    ],
)
def test_chat_and_system(system, want):
    assert render("hi", "chat", system=system) == want


def test_system_replaces_the_records_own_system_message():
    messages = [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}]
    assert render(messages, "chat", system="new")[0] == {"role": "system", "content": "new"}
    assert render(messages, "chat") == messages


def test_template_errors():
    with pytest.raises(BadInput, match="unknown template 'r1'"):
        render("x", "r1")
    with pytest.raises(BadInput, match="needs a text prompt"):
        render([{"role": "user", "content": "x"}], "r1-zero")
    with pytest.raises(BadInput, match="--system applies to --template chat"):
        render("x", "none", system="s")


@pytest.mark.parametrize(
    "text, think, answer",
    [
        ("<think> a </think><answer> 4 </answer>", "a", "4"),
        ("<think>a</think>\n<answer>1</answer> <answer>2</answer>", "a", "2"),  # the last answer counts
        ("a </think> <answer>3</answer>", "a", "3"),  # prompt ended with <think>
        ("<think><think>nested</think></think><answer>5</answer>", "<think>nested", "5"),
        ("<answer>unclosed", None, None),
        ("", None, None),
        ("plain text", None, None),
    ],
)
def test_think_and_answer(text, think, answer):
    assert think_part(text) == think
    assert answer_part(text) == answer


@pytest.mark.parametrize(
    "text, boxed",
    [
        (r"\boxed{42}", "42"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5.", "5"),
        (r"\boxed{unbalanced", None),
        (r"\boxed{ok} and \boxed{unbalanced", None),
        ("no box", None),
        ("\\boxed{" * 10000, None),
    ],
)
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


def test_final_answer_prefers_answer_tags_and_unwraps_boxes():
    assert extract_final_answer(r"<answer>\boxed{3}</answer> \boxed{9}") == "3"
    assert extract_final_answer(r"<answer> x = 2 </answer>") == "x = 2"
    assert extract_final_answer(r"so \boxed{9}") == "9"
    assert extract_final_answer("nothing") is None


def test_strip_think():
    assert strip_think("<think>a</think> b") == "b"
    assert strip_think("no think") == "no think"


@pytest.mark.parametrize(("template", "prompt", "want_end"), [
    ("r1-zero", "Compute 2 + 3.", "User: Compute 2 + 3. Assistant: <think>"),  # one full stop, then a space
    ("none", "Q: 2 + 3 = ", "Q: 2 + 3 = <think>"),
])
def test_prefill_ends_a_text_prompt(template, prompt, want_end):
    assert render(prompt, template, prefill="<think>").endswith(want_end)


def test_prefill_is_a_final_assistant_message_of_a_chat_prompt():
    messages = render("Hi", "chat", system="", prefill="<think>\n")
    assert messages == [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "<think>\n"}]
    with pytest.raises(BadInput, match="already ends with an assistant message"):
        render(messages, "chat", prefill="<think>")


def test_r1_zero_keeps_one_full_stop():
    assert "User: Compute 2 + 3. Assistant:" in render("Compute 2 + 3.", "r1-zero")
