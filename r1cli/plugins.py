"""Open registries: the rewards, engines and tasks that installed packages provide as entry points.

A distribution adds one by declaring an entry point in the group `r1cli.rewards`, `r1cli.engines`
or `r1cli.tasks` (in its pyproject.toml); nothing in r1cli is edited:

    [project.entry-points."r1cli.rewards"]
    brevity = "my_rewards:brevity"

r1cli declares its built-ins the same way in its own pyproject.toml. `BUILTIN` is the same table
(tests/test_plugins.py keeps the two equal), so that r1 also runs from a source tree whose package
metadata is absent or older than the code (scripts/gpu_check.py runs it from PYTHONPATH).

- **Lazy.** The names come from the installed metadata: one scan of the distributions'
  entry_points.txt files on first use (~10 ms), no import. A module is imported when its name is used.
- **Built-in names win.** `-r accuracy` means r1cli's accuracy in every environment, so a recipe
  means the same wherever it runs: a plugin's entry point with a built-in's name is ignored, with a
  warning when that name is used. Two plugins with one name: using it is an error naming both.
- **A broken plugin breaks only its own names.** One that fails to import, or whose object is not
  what its group needs, is a `PluginError` naming its distribution and entry point, raised when its
  name is used; every other name works.

>>> REWARDS = Registry("r1cli.rewards", "reward")
>>> REWARDS["format"], REWARDS.origin("format")
('r1cli.rewards.format:format_reward', 'r1cli')
>>> split_path("my_rewards.brevity:score")
('my_rewards.brevity', 'score')
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from r1cli.errors import PluginError

__all__ = ["BUILTIN", "GROUPS", "Provider", "Registry", "is_path", "load_path", "refresh", "split_path"]

DIST = "r1cli"
GROUPS = ("r1cli.rewards", "r1cli.engines", "r1cli.tasks")

# The built-ins, as pyproject.toml declares them (group -> name -> "module:attr"), in listing order.
BUILTIN: dict[str, dict[str, str]] = {
    "r1cli.rewards": {
        "accuracy": "r1cli.rewards.accuracy:accuracy_reward",
        "code": "r1cli.rewards.code:code_reward",
        "format": "r1cli.rewards.format:format_reward",
        "language": "r1cli.rewards.language:language_reward",
        "length": "r1cli.rewards.length:length_reward",
        "repetition": "r1cli.rewards.repetition:repetition_reward",
        "tags": "r1cli.rewards.format:tags_reward",
    },
    "r1cli.engines": {
        "hf": "r1cli.engines.hf:HFEngine",
        "vllm": "r1cli.engines.vllm:VLLMEngine",
        "openai": "r1cli.engines.openai:OpenAIEngine",
    },
    "r1cli.tasks": {
        "countdown": "r1cli.tasks.countdown:generate",
        "arithmetic": "r1cli.tasks.arithmetic:generate",
    },
}

_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class Provider:
    """Where a name comes from: `value` is ``module:attr``; `dist` the distribution (None: r1cli's built-in)."""

    name: str
    value: str
    group: str
    dist: str | None = None

    @property
    def origin(self) -> str:
        return DIST if self.dist is None else self.dist

    def where(self) -> str:
        """The entry point, as a user finds it in the distribution's metadata."""
        return f"entry point '{self.name} = {self.value}' (group {self.group}) of {self.origin}"


@functools.cache
def _scan() -> dict[str, dict[str, tuple[Provider, ...]]]:
    """Every other distribution's entry points in our groups: group -> name -> providers (sorted by dist)."""
    from importlib.metadata import entry_points

    found: dict[str, dict[str, set[Provider]]] = {group: {} for group in GROUPS}
    for group in GROUPS:
        for ep in entry_points(group=group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an unknown distribution"
            if _normal(dist) == DIST:  # r1cli's own: the same as BUILTIN (a test checks)
                continue
            found[group].setdefault(ep.name, set()).add(Provider(ep.name, ep.value, group, dist))
    return {g: {n: tuple(sorted(p, key=lambda x: x.origin)) for n, p in names.items()} for g, names in found.items()}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def refresh() -> None:
    """Forget the scanned entry points and loaded objects (after installing a plugin in a running process)."""
    _scan.cache_clear()
    importlib.invalidate_caches()
    for registry in Registry.instances:
        registry._loaded.clear()


class Registry(Mapping[str, str]):
    """The names of one group: a read-only mapping name -> ``module:attr``, built-ins first.

    Iterating, `in` and `[]` read metadata only; `load(name)` imports the object (once per process).
    """

    instances: list[Registry] = []

    def __init__(self, group: str, kind: str) -> None:
        self.group, self.kind = group, kind
        self.builtin = BUILTIN[group]
        self._loaded: dict[str, Any] = {}
        Registry.instances.append(self)

    def _plugins(self) -> dict[str, tuple[Provider, ...]]:
        return _scan()[self.group]

    def providers(self, name: str) -> list[Provider]:
        """Every provider of `name`: the built-in first (the one used), then plugins by distribution."""
        out = [Provider(name, self.builtin[name], self.group)] if name in self.builtin else []
        return out + list(self._plugins().get(name, ()))

    def __getitem__(self, name: str) -> str:
        found = self.providers(name)
        if not found:
            raise KeyError(name)
        return found[0].value

    def __iter__(self) -> Iterator[str]:
        yield from self.builtin
        yield from sorted(n for n in self._plugins() if n not in self.builtin)

    def __len__(self) -> int:
        return len(set(self.builtin) | set(self._plugins()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.builtin or name in self._plugins())

    def origin(self, name: str) -> str:
        """`r1cli` for a built-in, else the distribution that provides `name`."""
        return self.providers(name)[0].origin

    def load(self, name: str) -> Any:
        """The object `name` refers to, imported on first use. KeyError for a name that is not one;
        PluginError (naming the distribution and entry point) for one that cannot be loaded."""
        if name in self._loaded:
            return self._loaded[name]
        found = self.providers(name)
        if not found:
            raise KeyError(name)
        chosen = found[0]
        if chosen.dist is None and len(found) > 1:
            others = "; ".join(p.where() for p in found[1:])
            warnings.warn(f"{others} is ignored: '{name}' is r1cli's built-in {self.kind}. Rename it in that "
                          "plugin to use it", stacklevel=2)
        elif len(found) > 1:
            raise PluginError(f"two plugins provide a {self.kind} named '{name}': "
                              + " and ".join(p.where() for p in found),
                              hint=f"uninstall one of {', '.join(p.origin for p in found)}, or rename the entry point")
        module, _, attr = chosen.value.partition(":")
        obj = _import(module, attr, f"{self.kind} '{name}' ({chosen.where()})", _install_hint(chosen, self.kind))
        self._loaded[name] = obj
        return obj


def _install_hint(provider: Provider, kind: str) -> str:
    if provider.dist is None:
        return "r1cli's install is broken: reinstall it (make install)"
    return (f"fix or reinstall {provider.dist} (pip install --force-reinstall {provider.dist}), or uninstall it; "
            f"every other {kind} still works")


def _import(module: str, attr: str, what: str, hint: str) -> Any:
    try:
        obj: Any = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any error in the plugin's module (ImportError, SyntaxError, its own)
        raise PluginError(f"{what} cannot be loaded: importing {module} raised {type(exc).__name__}: {exc}",
                          hint=hint) from exc
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{what} cannot be loaded: {module} has no attribute '{attr}'", hint=hint) from None
    return obj


# ---- dotted paths: `-r my_rewards:brevity` ---------------------------------------------------


def is_path(spec: str) -> bool:
    """Whether `spec` is a dotted path ``package.module:attribute`` rather than a registered name.

    >>> is_path("my_rewards:brevity"), is_path("pkg.mod:fn.inner"), is_path("accuracy"), is_path("format:0.5")
    (True, True, False, False)
    """
    return _PATH.fullmatch(spec) is not None


def split_path(spec: str) -> tuple[str, str]:
    """``(module, attribute)`` of a dotted path ``module:attribute``."""
    module, _, attr = spec.partition(":")
    return module, attr


def load_path(spec: str, kind: str) -> Any:
    """The object at the dotted path `spec` (``package.module:attribute``), importable as installed or
    from the current directory (as TRL's `--reward_funcs` and `python -m` find them)."""
    if not is_path(spec):
        raise PluginError(f"'{spec}' is not a dotted path",
                          hint="write package.module:function, e.g. my_rewards:brevity")
    module, attr = split_path(spec)
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)  # after the installed packages: a local file never shadows one of them
    return _import(module, attr, f"{kind} '{spec}'",
                   f"the module must be importable: install its package, or run r1 from the folder that holds "
                   f"{module.split('.')[0]} (or add that folder to PYTHONPATH)")
