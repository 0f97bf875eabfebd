"""Training recipes: YAML files of trainer settings, merged with command-line flags.

A recipe is a YAML mapping. Its top-level keys are fields of the trainer's config class (TRL's
`GRPOConfig`, `SFTConfig`, …) and go to it unchanged; one reserved section, `r1:`, holds the
command's own settings (model, data, rewards, …), spelled like its flags with `_` for `-`.
Unknown keys are errors that name the key. Precedence: defaults < recipe < explicit flags.

>>> trainer, own = split_recipe({"beta": 0.04, "r1": {"reward": ["format"]}},
...                             trainer_fields={"beta", "seed"}, own_fields={"reward"})
>>> trainer, own
({'beta': 0.04}, {'reward': ['format']})
>>> merge({"beta": 0.001, "seed": 0}, trainer, {"seed": 7, "beta": None})
{'beta': 0.04, 'seed': 7}
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from r1cli.errors import BadInput

OWN_SECTION = "r1"


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe: a mapping (an empty file is an empty recipe)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such recipe file", hint="check the path given to -c/--config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the recipe ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a recipe must be a mapping of settings, got {type(data).__name__}",
                       hint="write one `key: value` per line, e.g. `learning_rate: 1.0e-6`")
    return data


def field_names(config_cls: type) -> set[str]:
    """The settable fields of a config dataclass (e.g. `GRPOConfig`)."""
    return {f.name for f in dataclasses.fields(config_cls) if f.init}


def split_recipe(recipe: Mapping[str, Any], *, trainer_fields: Collection[str], own_fields: Collection[str],
                 source: str = "recipe") -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a recipe into (trainer settings, `r1:` settings); an unknown key is a BadInput.

    `own_fields` are written with `_` (as Python names); `-` is accepted in the YAML too.

    >>> split_recipe({"bta": 1}, trainer_fields={"beta"}, own_fields=set())
    Traceback (most recent call last):
    r1cli.errors.BadInput: recipe: unknown setting 'bta'
    """
    trainer: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in recipe.items():
        if key == OWN_SECTION:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise BadInput(f"{source}: '{OWN_SECTION}' must be a mapping of r1 settings")
            for sub, subvalue in value.items():
                name = str(sub).replace("-", "_")
                if name not in own_fields:
                    close = difflib.get_close_matches(name, sorted(own_fields), n=1)
                    hint = (f"did you mean '{close[0]}'?" if close
                            else f"settings under '{OWN_SECTION}:' are: {', '.join(sorted(own_fields))}")
                    raise BadInput(f"{source}: unknown setting '{OWN_SECTION}.{sub}'", hint=hint)
                own[name] = subvalue
        elif key in trainer_fields:
            trainer[key] = value
        else:
            name = str(key).replace("-", "_")
            close = difflib.get_close_matches(name, sorted(trainer_fields), n=1)
            if name in own_fields:
                hint = f"'{key}' is an r1 setting: put it under '{OWN_SECTION}:'"
            elif close:
                hint = f"did you mean '{close[0]}'?"
            else:
                hint = f"top-level keys are the trainer config's fields; r1's own settings go under '{OWN_SECTION}:'"
            raise BadInput(f"{source}: unknown setting '{key}'", hint=hint)
    return trainer, own


def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win; a None value means "not given" and does not override."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is not None:
                out[key] = value
    return out


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of a settings value (enums and paths as text, unknown objects as repr)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    if isinstance(value, Path):
        return str(value)
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)
