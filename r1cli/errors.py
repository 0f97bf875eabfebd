"""Errors the library raises. The CLI prints them as `Error: …` / `Hint: …` and exits 1."""

from __future__ import annotations


class R1Error(Exception):
    """A failure the user can act on: a message, and optionally a hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadInput(R1Error):
    """Input data is malformed or lacks a field; the message names file:line."""


class UnknownModel(R1Error):
    """A model spec is neither an alias, a local folder, nor a loadable hub id."""


class UnknownReward(R1Error):
    """A reward name is not in the registry."""


class EngineUnavailable(R1Error):
    """An inference engine (or its optional dependency) cannot be used here."""


class BadOption(R1Error, ValueError):
    """An option's value is invalid, or the option does not apply (an engine option the chosen
    engine does not take). `flag` is its command-line spelling: the CLI makes it a usage error."""

    def __init__(self, message: str, hint: str | None = None, *, flag: str | None = None) -> None:
        super().__init__(message, hint)
        self.flag = flag


class PluginError(R1Error):
    """A reward, engine or task from an entry point (or a dotted path) cannot be loaded or is not one."""


class OutputError(R1Error):
    """The output cannot be written (disk full, permissions, a resume file that does not match)."""


class ResumeMismatch(OutputError):
    """`--resume` on an output made from another input, or by another run: refused, nothing written."""
