"""What made an output: settings compared on `--resume`, so that a resumed run is the same run.

Every command that writes a file or a run folder records the settings that determine what it
writes. `--resume` compares them with the settings it was given now and refuses any difference,
naming the setting, both values and the fix; settings that may change on resume (a longer
`--max-steps`, more `--workers`) are declared by the caller and left out of the comparison.

    changes = differences(old, new, may_change={"max_steps"})
    if changes:
        raise mismatch(changes, what="out.jsonl", fix="use another -o, or drop --resume to start again")

**The sidecar.** A JSONL output `FILE` (`-o FILE` of rollout, score, reject-sample; each stage
file of distill) carries `FILE.r1.json`, and its partial `FILE.part` carries `FILE.part.r1.json`
(renamed with it when the command succeeds, so a manifest always describes the file beside it):

    {"manifest": 1, "r1": "0.1.0", "command": "score",
     "settings": {"rewards": {"accuracy": 1.0}, "reward_params": {}, "workers": null, …},
     "input": {"source": "rollouts.jsonl", "records": 400, "sha256": "…"},
     "output": {"records": 400, "sha256": "…"}, "complete": true, "summary": {…}}

`input` fingerprints the input as read so far: the number of records read and the SHA-256 of
those records as JSON lines (`r1cli.jsonl.dumps`). On `--resume` the input is read again and
its first `records` records must hash the same, so another input is refused while an input
that grew at its end (prompts appended for rollout, records for score) is accepted: that is
what resuming a stream is for. `output` fingerprints the records written the same way, so that
the next stage can tell that its input is the file it was made from (distill). A resume of an
output without a manifest (made by an r1 from before manifests) is accepted with a warning:
the records' own content is still checked (score: ids and samples; rollout: the samples per
prompt and the model), and the manifest is written from then on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1cli.errors import OutputError, ResumeMismatch


@dataclass(frozen=True)
class Change:
    """One setting that differs: its dotted name, the value on record and the value given now."""

    key: str
    old: Any
    new: Any

    def describe(self) -> str:
        """`--temperature: 0.6 on record, 1.0 now`-style text (the key as given)."""
        return f"{self.key}: {_show(self.old)} on record, {_show(self.new)} now"


_MISSING = object()


def differences(old: Mapping[str, Any], new: Mapping[str, Any], *, may_change: Collection[str] = ()) -> list[Change]:
    """The settings whose values differ, by dotted key, sorted; keys in `may_change` (a top-level
    key, or a dotted one such as `trl.max_steps`) are not compared.

    >>> [c.key for c in differences({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}})]
    ['b.c', 'b.d']
    >>> differences({"max_steps": 2, "seed": 0}, {"max_steps": 5, "seed": 0}, may_change={"max_steps"})
    []
    >>> differences({"seed": 0}, {"seed": 0, "answer_budget": None})  # added since, and off
    []
    """
    return sorted(_walk(old, new, "", frozenset(may_change)), key=lambda c: c.key)


def _walk(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str, skip: frozenset[str]) -> Iterator[Change]:
    for key in sorted(set(old) | set(new), key=str):
        name = f"{prefix}{key}"
        if name in skip:
            continue
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if (a is _MISSING and b is None) or (a is None and b is _MISSING):  # added since, and off: the same run
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            yield from _walk(a, b, name + ".", skip)
        elif _normal(a) != _normal(b):
            yield Change(name, None if a is _MISSING else a, None if b is _MISSING else b)


def _normal(value: Any) -> Any:
    """Values as JSON stores them: a tuple and a list compare equal, as do 1 and 1.0."""
    if value is _MISSING:
        return None
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return repr(value)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def mismatch(changes: list[Change], *, what: str, fix: str) -> OutputError:
    """The refusal of a resume whose settings differ from those `what` was made with."""
    listed = "; ".join(c.describe() for c in changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
    return ResumeMismatch(f"{what} was made with other settings ({listed})", hint=fix)


# ---- the sidecar file ------------------------------------------------------------------------------

SUFFIX = ".r1.json"
FORMAT = 1  # the manifest's own layout
RESUME_FIX = "rerun with the settings on record to continue it, use another -o, or drop --resume to start again"


def sidecar(path: str | Path) -> Path:
    """The manifest of an output: FILE.r1.json (FILE.part.r1.json for FILE.part, FOLDER.r1.json for a folder)."""
    return Path(str(path) + SUFFIX)


@dataclass(frozen=True)
class Spec:
    """What determines an output's records: the command, its settings, and those that may change on resume.

    `flags` names the command-line flag of a setting where it is not `--` + the key's last part
    (`sampling.max_new_tokens` → `--max-new-tokens`); a key ending in "." names a prefix, the rest
    of the key appended (`{"rewards.": "-r "}`: `rewards.format` → `-r format`).
    """

    command: str
    settings: Mapping[str, Any]
    may_change: frozenset[str] = field(default_factory=frozenset)
    flags: Mapping[str, str] = field(default_factory=dict)

    def flag(self, key: str) -> str:
        """The flag that sets the setting `key`.

        >>> Spec("score", {}, flags={"rewards.": "-r "}).flag("rewards.format")
        '-r format'
        >>> Spec("rollout", {}).flag("sampling.top_p")
        '--top-p'
        """
        if key in self.flags:
            return self.flags[key]
        for prefix, flag in self.flags.items():
            if prefix.endswith(".") and key.startswith(prefix):
                return flag + key[len(prefix):]
        return "--" + key.rsplit(".", 1)[-1].replace("_", "-")

    def changes(self, recorded: Mapping[str, Any]) -> list[Change]:
        """The settings that differ from those `recorded`, each named by its flag."""
        found = differences(recorded, self.settings, may_change=self.may_change)
        return [Change(self.flag(c.key), c.old, c.new) for c in found]


def read(path: str | Path) -> dict[str, Any] | None:
    """The manifest of the output `path`, or None when it has none. One that cannot be read is an error."""
    file = sidecar(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        data = exc
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise OutputError(f"{file} is not a manifest r1 can read",
                          hint=f"remove it and {path} to start again, or use another -o")
    return data


def write(path: str | Path, spec: Spec, *, input: Mapping[str, Any] | None, output: Mapping[str, Any] | None,
          complete: bool, summary: Mapping[str, Any] | None = None) -> None:
    """Write the manifest of the output `path` (atomically)."""
    from r1cli import __version__
    from r1cli.files import write_json

    data: dict[str, Any] = {"manifest": FORMAT, "r1": __version__, "command": spec.command,
                            "settings": _normal(dict(spec.settings)), "input": dict(input) if input else None,
                            "output": dict(output) if output else None, "complete": complete}
    if summary is not None:
        data["summary"] = _normal(dict(summary))
    write_json(sidecar(path), data)


def check(previous: Mapping[str, Any], spec: Spec, *, what: str, fix: str = RESUME_FIX) -> None:
    """Refuse to continue `what` (made as `previous` records) under `spec`: another command, other settings."""
    made_by = previous.get("command")
    if made_by != spec.command:
        raise ResumeMismatch(f"{what} was written by r1 {made_by}, not r1 {spec.command}",
                             hint="use another -o, or drop --resume to start again")
    changes = spec.changes(previous.get("settings") or {})
    if changes:
        raise mismatch(changes, what=what, fix=fix)


# ---- fingerprints --------------------------------------------------------------------------------------


class Fingerprint:
    """A running SHA-256 of records in order, each as its JSON line.

    >>> a, b = Fingerprint(), Fingerprint()
    >>> a.add({"id": "q1"}); b.add_line(b'{"id": "q1"}\\n')
    >>> a.state() == b.state() == {"records": 1, "sha256": a.state()["sha256"]}
    True
    """

    def __init__(self, records: int = 0, hasher: Any = None) -> None:
        self.records = records
        self._hash = hasher if hasher is not None else hashlib.sha256()

    def add(self, record: Mapping[str, Any]) -> None:
        from r1cli.jsonl import dumps

        self.add_line(dumps(record).encode("utf-8"))

    def add_line(self, line: bytes) -> None:
        self._hash.update(line)
        self.records += 1

    def add_text(self, text: str) -> None:
        """Several whole lines at once."""
        self._hash.update(text.encode("utf-8"))
        self.records += text.count("\n")

    def copy(self) -> Fingerprint:
        return Fingerprint(self.records, self._hash.copy())

    def state(self) -> dict[str, Any]:
        return {"records": self.records, "sha256": self._hash.hexdigest()}


def fingerprint(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The fingerprint of every record in `records`."""
    fp = Fingerprint()
    for record in records:
        fp.add(record)
    return fp.state()


class InputCheck:
    """Reads an input through a fingerprint and, on resume, checks it starts as the recorded one did.

    `expected` is the `input` of the output's manifest (None: nothing to check). The records
    pass through `read`; when the `expected["records"]`-th has been read, their fingerprint must
    match, else ResumeMismatch (before that record goes on). `state()` is what the manifest
    records now: the recorded fingerprint until this read has covered it, then this one.
    """

    def __init__(self, source: str, expected: Mapping[str, Any] | None, *, what: str) -> None:
        self.source = source
        self.expected = dict(expected) if expected else None
        self.what = what
        self.fingerprint = Fingerprint()
        self.failed = False

    @property
    def _target(self) -> int:
        return int((self.expected or {}).get("records") or 0)

    def read(self, located: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        target, want = self._target, (self.expected or {}).get("sha256")
        fp = self.fingerprint
        for where, record in located:
            fp.add(record)
            if fp.records == target and want and fp.state()["sha256"] != want:
                self.failed = True
                raise ResumeMismatch(f"{self.source} is not the input {self.what} was made from "
                                     f"(its first {target:,} records differ)",
                                     hint="give it the input it was made from, use another -o, "
                                          "or drop --resume to start again")
            yield where, record
        if fp.records < target:
            self.failed = True
            raise ResumeMismatch(f"{self.source} holds {fp.records:,} records, fewer than the {target:,} "
                                 f"{self.what} was made from",
                                 hint="give it the input it was made from, use another -o, "
                                      "or drop --resume to start again")

    def state(self) -> dict[str, Any]:
        if self.expected is not None and (self.failed or self.fingerprint.records < self._target):
            return {**self.expected, "source": self.source}
        return {"source": self.source, **self.fingerprint.state()}
