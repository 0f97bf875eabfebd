"""The `code` verifier: the completion's program passes the record's `tests`, as the `code` reward judges it.

Code is judged by running it (`r1cli.rewards.code`, in the sandbox); this module only routes a
record with ``task: code`` there, so that `accuracy` covers every task. Nothing is extracted:
`pred` is null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from r1cli.errors import R1Error, UnknownReward
from r1cli.verifiers import Extraction, Mode


class CodeVerifier:
    """Code: the record's `tests` (list of {"input", "output"})."""

    task = "code"

    def __init__(self) -> None:
        self._reward: Any = None  # the code reward, built on first use

    def needs(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return ("tests",)

    def extract(self, completion: str, record: Mapping[str, Any], mode: Mode) -> Extraction:
        return Extraction(None)

    def judge(self, extraction: Extraction, completion: str, record: Mapping[str, Any]) -> float | None:
        if self._reward is None:
            from r1cli import rewards

            try:
                self._reward = rewards.get_factory("code")()
            except UnknownReward:
                raise R1Error(
                    "task 'code' needs the `code` reward (r1cli/rewards/code.py), which is not available",
                    hint="score code records with a build of r1cli that ships the code sandbox",
                ) from None
        return self._reward(completion, **record)


VERIFIER = CodeVerifier()
