"""Fixtures of the fault suite: the failures users meet, each with an assertion.

The helpers (processes, kills, record checks) are in `faultkit.py` next to this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tiny(tiny_model: str) -> str:
    """The folder of the tiny random model, built once per session (tests/conftest.py)."""
    return tiny_model


@pytest.fixture
def prompts(tmp_path: Path):
    """`prompts(n)`: a file of n arithmetic prompt records (as `r1 data arithmetic -n N --seed 0` writes them)."""
    from faultkit import write_jsonl

    from r1cli import tasks

    def make(n: int, name: str = "prompts.jsonl") -> Path:
        return write_jsonl(tmp_path / name, tasks.generate("arithmetic", n, seed=0))

    return make
