"""What makes evaluation numbers comparable: the R1 protocol by name, the LiveCodeBench preset's
record conversion, and the model revision that results.json records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from r1cli.errors import BadInput

# ---- the R1 protocol by name ---------------------------------------------------------------------

# DeepSeek-R1 §3 as open-r1 documents it: 32,768 new tokens, T 0.6, top-p 0.95, and k samples per
# question by benchmark (AIME 64, MATH-500 4, GPQA Diamond 8). LiveCodeBench and GSM8K: 16 and 4,
# r1's choice inside the paper's 4-64 range (k grows as a benchmark gets smaller).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "r1": {"max_new_tokens": 32768, "temperature": 0.6, "top_p": 0.95, "top_k": 0,
           "samples": {"aime24": 64, "aime25": 64, "math500": 4, "gpqa-diamond": 8, "livecodebench": 16,
                       "gsm8k": 4}, "default_samples": 4},
}


def protocol_samples(protocol: str | None, spec: str, samples: int) -> int:
    """Samples per question for benchmark `spec` under `protocol` (None: `samples` as given).

    >>> protocol_samples("r1", "aime25=local.jsonl", 4), protocol_samples("r1", "math500", 16)
    (64, 4)
    >>> protocol_samples(None, "aime24", 8), protocol_samples("r1", "mine.jsonl", 2)
    (8, 4)
    """
    if protocol is None:
        return samples
    table = PROTOCOLS[protocol]
    return table["samples"].get(spec.partition("=")[0], table["default_samples"])



def lcb_record(record: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """A LiveCodeBench row as a `code` prompt record: the problem, and its stdin/stdout tests.

    Tests come from `public_test_cases` and `private_test_cases` (JSON text, or LiveCodeBench's
    base64 + zlib + pickled JSON text, read with an unpickler that loads no classes). Functional
    tests (`testtype: functional`, a LeetCode-style call of a method) need a harness the code
    reward does not have: a problem with only those is an error naming it.

    >>> r = lcb_record({"question_id": "q1", "question_content": "Print 2.",
    ...                 "public_test_cases": '[{"input": "", "output": "2", "testtype": "stdin"}]'}, 0)
    >>> r["task"], r["tests"], r["id"]
    ('code', [{'input': '', 'output': '2'}], 'q1')
    """
    cases = _lcb_cases(record.get("public_test_cases")) + _lcb_cases(record.get("private_test_cases"))
    tests = [{"input": str(c.get("input", "")), "output": str(c.get("output", ""))}
             for c in cases if isinstance(c, Mapping) and c.get("testtype", "stdin") == "stdin"]
    if not tests:
        raise BadInput(f"problem {record.get('question_id', '?')}: no stdin/stdout tests "
                       f"({len(cases)} functional or unreadable)",
                       hint="the code reward runs stdin/stdout programs; keep the stdin problems of the file")
    prompt = str(record["question_content"]).strip()
    if record.get("starter_code"):
        prompt += f"\n\nStarter code:\n```python\n{record['starter_code']}\n```"
    out = {"prompt": prompt, "tests": tests, "task": "code"}
    if record.get("question_id") is not None:
        out["id"] = str(record["question_id"])
    return out


def _lcb_cases(value: Any) -> list[Any]:
    import base64
    import pickle
    import zlib

    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    text = str(value)
    try:
        cases = json.loads(text)
    except json.JSONDecodeError:
        class NoClasses(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:  # a data pickle needs no classes
                raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

        import io as _io
        try:
            raw = zlib.decompress(base64.b64decode(text))
            cases = json.loads(NoClasses(_io.BytesIO(raw)).load())
        except Exception as exc:  # noqa: BLE001 - any decoding failure is unreadable test data
            raise BadInput(f"unreadable test cases ({type(exc).__name__})",
                           hint="LiveCodeBench test cases are JSON text, or base64 of zlib of a pickled JSON text") from None
    return cases if isinstance(cases, list) else []




def model_revision(spec: str | None) -> str | None:
    """The model's revision: the hub commit of a cached hub model, else "sha256:…" of a local
    folder's weights and config files (names, sizes and contents), else None.

    Hashing reads the files once: ~1 s per GB on this machine's disk.
    """
    if not spec:
        return None
    from r1cli.models import resolve_model

    try:
        folder = Path(resolve_model(spec))
    except Exception:  # noqa: BLE001 - a served model (openai) or an unresolvable name has no folder here
        return None
    if not folder.is_dir():
        return None
    parts = folder.resolve().parts
    if "snapshots" in parts:  # the hub cache: .../snapshots/<commit>/
        return parts[parts.index("snapshots") + 1]
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".json", ".bin",
                                                                                     ".model", ".gguf", ".txt")):
        digest.update(f"{path.name}\x1f{path.stat().st_size}\x1f".encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]
