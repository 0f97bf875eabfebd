"""The engine options of the sampling commands, derived from the engines' own declarations.

`@with_engine_options()` gives a command `--engine` and one flag per engine option: every field
of every engine's options dataclass (r1cli.engines.options), with the help, bounds and defaults
the declarations carry. The command receives one `EngineChoice`, already checked: an option the
chosen engine does not take, a missing --base-url or a bad value is a usage error (exit 2) that
names the flag, before any input is read.

    @with_engine_options(aliases={"--batch-size": "batch_size"})
    def rollout_cmd(..., engine: EngineArg = "hf", ...) -> None:
        eng = build_engine(engine, model)

No command lists the engine options itself, so an engine added to the registry brings its flags
to rollout, eval and distill without an edit here.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Annotated, Any, TypeVar

import typer

from r1cli.cli._common import complete_engine, err
from r1cli.engines.options import EngineChoice, EngineOptions, declared, flag_of, option_types
from r1cli.errors import PluginError

EngineArg = EngineChoice
"""The annotation of a command's `engine` parameter; its default is the default engine's name."""

PANEL = "Engine options"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EngineFlag:
    """One command-line flag for an option field that one or more engines declare."""

    field: str  # the options field, e.g. batch_size
    flag: str  # e.g. --engine-batch-size
    kind: type
    help: str  # as --help shows it: which engines take it, and their defaults
    about: str  # what it is, as declared: "sequences per engine call"
    engines: tuple[str, ...]
    min: float | None = None
    max: float | None = None
    metavar: str | None = None

    @property
    def param(self) -> str:
        return f"engine_option_{self.field}"

    def annotation(self, *names: str, hidden: bool = False) -> Any:
        return Annotated[self.kind | None, typer.Option(
            *(names or (self.flag,)), help=self.help, min=self.min, max=self.max, metavar=self.metavar,
            hidden=hidden, show_default=False, rich_help_panel=PANEL)]


def engine_help(engines: Sequence[str] | None = None) -> str:
    """The help of --engine: each engine's name and its one-line summary."""
    from r1cli.engines import ENGINES

    names = [n for n in ENGINES if engines is None or n in engines]
    described = []
    for name in names:
        try:
            summary = getattr(ENGINES.load(name), "summary", "")
        except PluginError:  # a broken plugin: its name only (choosing it reports why)
            summary = ""
        described.append(f"{name} ({summary})" if summary else name)
    return "Inference engine: " + ", ".join(described) + "."


def engine_flags(engines: Sequence[str] | None = None, *, prefix: str = "") -> list[EngineFlag]:
    """The flags of every option the engines declare (all registered engines, or `engines`), one per
    field name, in declaration order. An option that only some of them take says which."""
    classes = {name: cls for name, cls in declared().items() if engines is None or name in engines}
    takers: dict[str, list[tuple[str, Field[Any], Any]]] = {}
    for name, cls in classes.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            takers.setdefault(f.name, []).append((name, f, hints[f.name]))
    out = []
    for key, entries in takers.items():
        _, first, hint = entries[0]
        names = tuple(name for name, _, _ in entries)
        kinds, _ = option_types(hint)
        out.append(EngineFlag(field=key, flag=flag_of(first), kind=kinds[0], engines=names,
                              about=first.metadata.get("help", ""),
                              help=_help(entries, all_engines=len(names) == len(classes), prefix=prefix),
                              min=first.metadata.get("min"), max=first.metadata.get("max"),
                              metavar=first.metadata.get("metavar")))
    return out


def _help(entries: list[tuple[str, Field[Any], Any]], *, all_engines: bool, prefix: str) -> str:
    """'openai engine: requests in flight at once (default 16).' from the declarations."""
    _, first, _ = entries[0]
    text = first.metadata.get("help", "")
    if all_engines:
        text = prefix + (text[:1].upper() + text[1:] if not prefix else text)
    else:
        names = [name for name, _, _ in entries]
        text = f"{prefix}{', '.join(names)} engine{'s' if len(names) > 1 else ''}: {text}"
    if any(f.metadata.get("required") for _, f, _ in entries):
        return f"{text} (required)."
    defaults = [(name, _default_text(f)) for name, f, _ in entries]
    shown = [(name, d) for name, d in defaults if d is not None]
    if not shown:
        return text + "."
    if len({d for _, d in defaults}) == 1:
        return f"{text} (default {shown[0][1]})."
    per = "; ".join(f"{name}{':' if ' ' in d else ''} {d}" for name, d in shown)
    return f"{text} (default: {per})."


def _default_text(f: Field[Any]) -> str | None:
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    default = f.default if f.default is not MISSING else None
    if default is None:
        return None
    return f"{default:g}" if isinstance(default, float) else str(default)


def with_engine_options(*, engines: Sequence[str] | None = None, aliases: Mapping[str, str] | None = None,
                        prefix: str = "") -> Callable[[F], F]:
    """Replace a command's `engine` parameter by `--engine` and the engine flags; call the command
    with `engine=EngineChoice(...)`.

    `engines`: offer only these (one engine: no --engine flag, e.g. grpo's r1 generation, always
    hf). `aliases`: hidden old spellings of a flag (alias → options field), which still work and
    print a deprecation warning. `prefix`: put in front of every flag's help.
    """
    aliases = dict(aliases or {})

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        if "engine" not in signature.parameters:
            raise TypeError(f"{fn.__name__} has no `engine` parameter to put the engine options in")
        default = signature.parameters["engine"].default
        if not isinstance(default, str):
            raise TypeError(f"{fn.__name__}: the default of `engine` must be an engine name")
        flags = engine_flags(engines, prefix=prefix)
        by_field = {f.field: f for f in flags}
        choose = engines is None or len(engines) > 1
        renamed = {alias: (f"engine_alias_{i}", by_field[field]) for i, (alias, field) in enumerate(aliases.items())}
        params = []
        for p in signature.parameters.values():
            if p.name != "engine":
                params.append(p)
                continue
            if choose:
                params.append(p.replace(annotation=Annotated[str, typer.Option(
                    "--engine", autocompletion=complete_engine, help=engine_help(engines), rich_help_panel=PANEL)]))
            params += [inspect.Parameter(f.param, p.kind, default=None, annotation=f.annotation()) for f in flags]
            params += [inspect.Parameter(param, p.kind, default=None, annotation=f.annotation(alias, hidden=True))
                       for alias, (param, f) in renamed.items()]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = kwargs.pop("engine", default) if choose else default
            given = {f.field: kwargs.pop(f.param, None) for f in flags}
            for alias, (param, f) in renamed.items():
                value = kwargs.pop(param, None)
                if value is None:
                    continue
                if given.get(f.field) is not None:
                    raise typer.BadParameter(f"{alias} and {f.flag} are the same option: give {f.flag} only",
                                             param_hint=alias)
                err.print(f"Warning: {alias} is deprecated here: use {f.flag} ({f.about}).",
                          markup=False, soft_wrap=True)
                given[f.field] = value
            kwargs["engine"] = choose_engine(name, given)
            return fn(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper  # type: ignore[return-value]

    return decorate


def choose_engine(name: str, given: Mapping[str, Any]) -> EngineChoice:
    """The checked EngineChoice of the flags given (None = not given); a bad option is a usage error."""
    from r1cli.errors import BadOption

    try:
        return EngineChoice(name, {k: v for k, v in given.items() if v is not None})
    except BadOption as exc:
        raise typer.BadParameter(exc.message + (f"; {exc.hint}" if exc.hint else ""), param_hint=exc.flag) from None


def build_engine(engine: EngineChoice, model: str | None) -> Any:
    """The chosen engine for `model` (None: smollm2-135m for hf/vllm, the served model for openai)."""
    return engine.build(model)


__all__ = ["EngineArg", "EngineChoice", "EngineFlag", "EngineOptions", "build_engine", "choose_engine",
           "engine_flags", "engine_help", "with_engine_options"]
