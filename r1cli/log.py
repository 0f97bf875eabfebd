"""Keep what libraries say off the user's terminal: stderr shows r1's own lines only.

transformers, TRL, accelerate, datasets and torch speak through three channels: the `warnings`
module (deprecations, FutureWarning), Python `logging`, and their own verbosity settings and
progress bars. A new release adds a line to one of them every few months (transformers 5.24's
"`past_key_values` is deprecated" on every forward pass was one), and each such line landed on
the user's stderr between r1's progress and summary. `setup()` routes all three away:

- warnings from outside r1cli go to the `r1cli.libraries` logger instead of stderr;
- log records of every library propagate to the root logger, whose one handler is r1's;
- the Hugging Face libraries' own verbosity is `error`, and their progress bars (tqdm's) are off.

With `-v/--verbose` (or `R1_VERBOSE=1`, which the CLI sets so child processes inherit it) those
lines are shown on stderr, each prefixed `r1: library:`. `R1_LOG_FILE=PATH` appends them to a
file in either mode. The library API (`import r1cli`) never calls this: a notebook keeps its own
warning settings; the CLI calls it once per process.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TextIO

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
LOGGER = "r1cli.libraries"

# Environment read by the Hugging Face libraries at import (and inherited by worker processes).
_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # plain tqdm bars the libraries start without a switch of their own (transformers' "Converting
    # and de-quantizing GGUF tensors" when SmolLM2 is converted on first use); tqdm >= 4.66 reads it
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",  # else tokenizers warns after every fork of the scoring pool
}

def verbose_enabled() -> bool:
    return os.environ.get("R1_VERBOSE", "") not in ("", "0")


def setup(verbose: bool | None = None, *, stream: TextIO | None = None) -> None:
    """Route library warnings and log records away from stderr (shown there with `verbose`)."""
    if verbose is None:
        verbose = verbose_enabled()
    elif verbose:
        os.environ["R1_VERBOSE"] = "1"
    for key, value in _QUIET_ENV.items():
        if verbose and key.endswith("VERBOSITY"):
            value = "warning"
        os.environ.setdefault(key, value)
    _quiet_imported_libraries(verbose)

    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_r1", False)]:
        root.removeHandler(handler)
    handler = _Handler(verbose, stream)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER).setLevel(logging.WARNING)
    warnings.showwarning = _show_warning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """`warnings.showwarning` replacement: r1's own warnings on stderr, a library's to the log."""
    text = f"{category.__name__}: {message} ({filename}:{lineno})"
    if str(Path(filename).resolve()).startswith(_PACKAGE_DIR):
        print(f"Warning: {message}", file=sys.stderr)
        return
    logging.getLogger(LOGGER).warning(text)


def _quiet_imported_libraries(verbose: bool) -> None:
    """The env variables act at import; set the same for libraries a process already imported."""
    level = logging.WARNING if verbose else logging.ERROR
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(level)
    if "datasets" in sys.modules:
        import datasets

        datasets.utils.logging.set_verbosity(level)
        datasets.utils.logging.disable_progress_bar()


class _Handler(logging.Handler):
    """The root logger's one handler: a library's record goes to stderr only with --verbose."""

    _r1 = True

    def __init__(self, verbose: bool, stream: TextIO | None) -> None:
        super().__init__(logging.WARNING)
        self.verbose = verbose
        self.stream = stream
        self.path = os.environ.get("R1_LOG_FILE") or None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a library's malformed log call must not break the command
            text = str(record.msg)
        if record.name.startswith("r1cli.") and record.name != LOGGER:
            print(f"Warning: {text}", file=self.stream or sys.stderr)  # r1's own
            return
        if record.name != LOGGER:
            text = f"{record.name}: {text}"
        if self.verbose:
            print(f"r1: library: {text}", file=self.stream or sys.stderr)
        if self.path:
            _append(self.path, text)


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fp:
            fp.write(text + "\n")
    except OSError:
        pass  # an unwritable log file is not worth failing a rollout over

