"""What each engine takes besides the model: one options dataclass per engine, and its checks.

An engine declares its options once, as a frozen dataclass of `option(...)` fields, and names it
on its class (`Options = HFOptions`):

    @dataclass(frozen=True, kw_only=True)
    class HFOptions(EngineOptions):
        engine: ClassVar[str] = "hf"
        batch_size: int = engine_batch_size(64)
        dtype: str | None = dtype_option("bf16 on GPU and on CPUs with bf16 instructions, else fp32")

Everything else follows from that declaration. Building the dataclass checks types, bounds,
choices and required options, naming the flag (`BadOption`); `engine_options(name, given)` also
refuses an option the engine does not take, naming the engines that do; and the CLI derives its
flags, their help and these errors from the same fields (r1cli/cli/_engine.py).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar, Union

from r1cli.errors import BadOption, PluginError

# --dtype names -> the canonical name (torch's and vLLM's); "auto" = the engine's own choice
DTYPES = {
    "auto": "auto", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
    "half": "float16", "float32": "float32", "fp32": "float32", "float": "float32",
}


def option(default: Any = None, *, help: str, flag: str | None = None, min: float | None = None,  # noqa: A002
           max: float | None = None, metavar: str | None = None, default_text: str | None = None,
           required: str | None = None, choices: Mapping[str, Any] | None = None, output: bool = True) -> Any:
    """A field of an engine's options, with what the CLI needs to offer it as a flag.

    `help`: the flag's help, without the default (the CLI adds it); `flag`: its spelling (default
    --field-name); `min`/`max`: inclusive bounds; `default_text`: how --help shows a None default;
    `required`: the engine cannot run without it, and this example says what to give (e.g.
    "e.g. http://127.0.0.1:8000/v1"); `choices`: accepted names -> the value kept; `output`:
    False for options that change only speed or robustness, never the records (--concurrency).
    """
    meta = {"help": help, "flag": flag, "min": min, "max": max, "metavar": metavar, "default_text": default_text,
            "required": required, "choices": choices, "output": output}
    return field(default=default, metadata=meta)


def engine_batch_size(default: int | None, *, default_text: str | None = None) -> Any:
    """The batch every engine has: sequences handed to one generate() call. `--engine-batch-size`,
    never `--batch-size`, which is the per-device training batch in grpo and sft."""
    return option(default, min=1, flag="--engine-batch-size", default_text=default_text, output=False,
                  help="sequences per engine call")


def dtype_option(default_text: str) -> Any:
    """`--dtype` of the engines that load the weights themselves."""
    return option(None, choices=DTYPES, default_text=default_text, help="float32, bfloat16 or float16")


def flag_of(f: Field[Any]) -> str:
    """The command-line spelling of an option field: base_url → --base-url."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Base of an engine's options dataclass; an engine without options may use it as is."""

    engine: ClassVar[str] = ""  # the engine's name, for messages

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _checked(f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            required = f.metadata.get("required")
            if value is None and required:
                metavar = f.metadata.get("metavar") or f.name.upper()
                raise BadOption(f"--engine {self.engine or type(self).__name__} needs {flag_of(f)} {metavar} "
                                f"({required})", flag=flag_of(f))
        self.check()

    def check(self) -> None:
        """Checks that involve more than one option, or more than a type and bounds: raise BadOption."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def record_settings(self) -> dict[str, Any]:
        """The options that can change the records (for a manifest: not --concurrency, --engine-batch-size, …)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("output", True)}

    @classmethod
    def of(cls, options: EngineOptions | Mapping[str, Any] | None = None, **values: Any) -> EngineOptions:
        """Checked options from an options object of this engine, a mapping of its fields, or keywords
        (which win). None means not given: the field's default."""
        if isinstance(options, cls) and not values:
            return options
        if isinstance(options, EngineOptions) and not isinstance(options, cls):
            raise BadOption(f"{type(options).__name__} are the options of --engine {options.engine}, not "
                            f"{cls.engine or cls.__name__}")
        base = options.to_dict() if isinstance(options, EngineOptions) else dict(options or {})
        given = {k: v for k, v in {**base, **values}.items() if v is not None}
        names = {f.name for f in fields(cls)}
        extra = sorted(set(given) - names)
        if extra:
            raise not_taken(cls.engine or cls.__name__, extra[0])
        return cls(**given)


def option_types(hint: Any) -> tuple[tuple[type, ...], bool]:
    """(the types an option field's annotation allows, whether it allows None).

    >>> option_types(int | None)
    ((<class 'int'>,), True)
    """
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    kinds = tuple(a for a in args if a is not type(None))
    return kinds, len(kinds) < len(args)


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _checked(f: Field[Any], hint: Any, value: Any) -> Any:
    """`value` as the field keeps it (an int for a float field becomes a float; a choice its canonical
    name), or BadOption naming the flag."""
    flag = flag_of(f)
    kinds, optional = option_types(hint)
    if value is None:
        if optional:
            return None
        raise BadOption(f"{flag} cannot be None", flag=flag)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        wanted = " or ".join(_NAMES.get(k, k.__name__) for k in kinds)
        raise BadOption(f"{flag} must be {wanted}, got {value!r}", flag=flag)
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        raise BadOption(f"{flag} must be ≥ {low:g}, got {value:g}", flag=flag)
    if high is not None and value > high:
        raise BadOption(f"{flag} must be ≤ {high:g}, got {value:g}", flag=flag)
    choices = f.metadata.get("choices")
    if choices is not None:
        key = value.lower() if isinstance(value, str) else value
        if key not in choices:
            names = ", ".join(dict.fromkeys(str(v) for v in choices.values()))
            raise BadOption(f"{flag} {value}: choose from {names}", flag=flag)
        value = choices[key]
    return value


# ---- the registry's view: which engine takes which option ---------------------------------------


def options_class(name: str) -> type[EngineOptions]:
    """The options dataclass of engine `name` (imports the engine's module, never torch)."""
    from r1cli.engines import ENGINES, unknown_engine

    if name not in ENGINES:
        raise unknown_engine(name)
    cls = getattr(ENGINES.load(name), "Options", EngineOptions)
    if not (isinstance(cls, type) and issubclass(cls, EngineOptions)):
        raise PluginError(f"engine '{name}' ({ENGINES[name]}): its `Options` is not an EngineOptions dataclass",
                          hint="declare the engine's options as a dataclass subclassing r1cli.engines.EngineOptions")
    return cls


def declared() -> dict[str, type[EngineOptions]]:
    """Every engine's options class, by engine name, in the registry's order. An engine that cannot be
    loaded is left out here (using it reports why)."""
    from r1cli.engines import ENGINES

    out = {}
    for name in ENGINES:
        try:
            out[name] = options_class(name)
        except PluginError:
            continue
    return out


def not_taken(engine: str, key: str) -> BadOption:
    """The error for an option that engine `engine` does not take: the engines that do take it, by flag."""
    takers = {name: f for name, cls in declared().items() for f in fields(cls) if f.name == key}
    if not takers:
        own = [f.name for f in fields(declared()[engine])] if engine in declared() else []
        return BadOption(f"--engine {engine} takes no option '{key}'",
                         hint=f"its options: {', '.join(own)}" if own else f"--engine {engine} takes no options")
    flag = flag_of(next(iter(takers.values())))
    return BadOption(f"{flag} applies to --engine {' or '.join(takers)}, not {engine}", flag=flag,
                     hint=f"drop {flag}, or choose --engine {next(iter(takers))}")


def engine_options(name: str, options: EngineOptions | Mapping[str, Any] | None = None,
                   **values: Any) -> EngineOptions:
    """The checked options of engine `name`: from its options object, a mapping, or keywords."""
    return options_class(name).of(options, **values)


@dataclass(frozen=True)
class EngineChoice:
    """An engine by name and its checked options: all a stage needs to build the engine.

    >>> EngineChoice("openai", {"base_url": "http://127.0.0.1:8000/v1"}).options.concurrency
    16
    """

    name: str = "hf"
    options: Any = None  # EngineOptions of `name`, or a mapping of its fields; None = the defaults

    def __post_init__(self) -> None:
        given = self.options
        checked = engine_options(self.name, given)
        object.__setattr__(self, "options", checked)
        if isinstance(given, Mapping):
            explicit = {k for k, v in given.items() if v is not None}
        else:  # an options object (or None): what differs from the defaults
            explicit = {f.name for f in fields(checked) if getattr(checked, f.name) != f.default}
        object.__setattr__(self, "_given", frozenset(explicit))

    def given(self) -> dict[str, Any]:
        """Only the options that were given (flags, or a mapping's keys), for settings layered over a recipe."""
        return {k: v for k, v in self.options.to_dict().items() if k in self._given}

    def build(self, model: str | None = None) -> Any:
        """The engine, for the model spec `model` (None: the engine's default model, or the served one)."""
        from r1cli.engines import get_engine

        return get_engine(self.name, model, self.options)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options.to_dict()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineChoice:
        return cls(data.get("name", "hf"), data.get("options") or {})

    def record_settings(self) -> dict[str, Any]:
        """What determines the records: the engine and the options that can change them."""
        return {"engine": self.name, **self.options.record_settings()}
