"""Prompt records: explicit field mapping, answer extraction, a stable `id` for every prompt.

    for where, record in prepare_prompts(iter_records("gsm8k.jsonl"), prompt_field="question",
                                         answer_field="answer", extract="gsm8k"):
        ...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from r1cli.errors import BadInput
from r1cli.sources import Located, iter_records, json_type
from r1cli.templates import gsm8k_answer, last_boxed

EXTRACTORS = ("gsm8k", "boxed")


def prompt_id(prompt: Any) -> str:
    """A stable id derived from the prompt: 'p-' + 12 hex digits of its SHA-1."""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, sort_keys=True)
    return "p-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def extract_answer(text: str, how: str) -> str | None:
    r"""Pull a final answer out of a solution: 'gsm8k' ('#### 42') or 'boxed' (last \boxed{}).

    >>> extract_answer("3 + 4 = 7\n#### 7", "gsm8k"), extract_answer(r"so \boxed{\frac{1}{2}}.", "boxed")
    ('7', '\\frac{1}{2}')
    """
    if how == "gsm8k":
        return gsm8k_answer(text)
    if how == "boxed":
        return last_boxed(text)
    raise BadInput(f"unknown answer extraction '{how}'", hint=f"choose from: {', '.join(EXTRACTORS)}")


def prepare_prompts(located: Iterable[Located], *, prompt_field: str | None = None, answer_field: str | None = None,
                    extract: str | None = None) -> Iterator[Located]:
    """Validate and normalise prompt records: map fields, extract answers, add a stable `id`.

    Field mapping is explicit (`prompt_field`, `answer_field`): a record without `prompt` is an
    error that names the fields the record does have. Duplicate ids are an error (samples are
    grouped by id); a prompt that repeats without an id gets '-2', '-3'… appended.
    """
    if extract is not None and extract not in EXTRACTORS:
        raise BadInput(f"unknown answer extraction '{extract}'", hint=f"choose from: {', '.join(EXTRACTORS)}")
    pfield = prompt_field or "prompt"
    afield = answer_field or "answer"
    seen: dict[str, str] = {}
    derived: dict[str, int] = {}
    for where, record in located:
        if pfield not in record:
            fields = ", ".join(sorted(record)) or "none"
            hint = (f"the record's fields are: {fields}; map one with --prompt-field"
                    if prompt_field is None else f"the record's fields are: {fields}")
            raise BadInput(f"{where}: no '{pfield}' field", hint=hint)
        prompt = record[pfield]
        if not _valid_prompt(prompt):
            raise BadInput(f"{where}: '{pfield}' must be a non-empty string or a list of "
                           '{"role": ..., "content": ...} messages',
                           hint=f"got {json_type(prompt)}")
        out = dict(record)
        out["prompt"] = prompt
        if answer_field is not None or extract is not None:
            if afield not in record:
                raise BadInput(f"{where}: no '{afield}' field", hint=f"the record's fields are: {', '.join(sorted(record))}")
            value = record[afield]
            if extract is not None:
                if not isinstance(value, str):
                    raise BadInput(f"{where}: '{afield}' must be text to extract an answer from")
                answer = extract_answer(value, extract)
                if answer is None:
                    shape = "'#### <answer>'" if extract == "gsm8k" else "'\\boxed{...}'"
                    raise BadInput(f"{where}: no {shape} in '{afield}'",
                                   hint="check --extract-answer matches the data set, or fix the record")
                value = answer
            out["answer"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if "id" in out and out["id"] is not None:
            rid = str(out["id"])
        else:
            base = prompt_id(prompt)
            derived[base] = derived.get(base, 0) + 1
            rid = base if derived[base] == 1 else f"{base}-{derived[base]}"
        if rid in seen:
            raise BadInput(f"{where}: duplicate id '{rid}' (first at {seen[rid]})",
                           hint="ids must be unique: samples are grouped by id")
        seen[rid] = where
        out["id"] = rid
        yield where, out


def _valid_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return bool(prompt.strip())
    return (isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt))


def load_prompts(source: str = "-", *, split: str | None = None, prompt_field: str | None = None,
                 answer_field: str | None = None, extract_answer: str | None = None) -> Iterator[dict[str, Any]]:
    """Prompt records from any source, validated, with stable ids."""
    located = iter_records(source, split=split)
    for _, record in prepare_prompts(located, prompt_field=prompt_field, answer_field=answer_field,
                                     extract=extract_answer):
        yield record
