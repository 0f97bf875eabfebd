"""`r1 report` for test-time compute: the scaling curve of a thinking-budget sweep, the think
tokens per budget, and the warning when compared results were made under different protocols.

An evaluation made with `r1 eval --think-budget 64,128,…` has one results entry per budget
(`think_budget`, `mean_think_tokens`, `benchmark`). The scaling curve puts pass@1 against the
mean think tokens actually spent, one line per model and benchmark (s1, Muennighoff et al. 2025,
Fig. 1), so a model that stops early under a large budget shows as a short line, not a flat one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# the settings that make two evaluations' numbers comparable; any difference is reported
PROTOCOL_KEYS = ("protocol", "max_new_tokens", "temperature", "top_p", "top_k", "template", "instruction")


def sweep_points(results: Mapping[str, Any]) -> dict[str, list[tuple[int, float, float]]]:
    """(budget, mean think tokens, pass@1) of each benchmark's budgets, by benchmark, budgets in order.

    >>> sweep_points({"benchmarks": [
    ...     {"benchmark": "b", "think_budget": 64, "mean_think_tokens": 60.0, "pass@1": 0.5},
    ...     {"benchmark": "b", "think_budget": 16, "mean_think_tokens": 16.0, "pass@1": 0.25},
    ...     {"data": "c", "pass@1": 0.1}]})
    {'b': [(16, 16.0, 0.25), (64, 60.0, 0.5)]}
    """
    out: dict[str, list[tuple[int, float, float]]] = {}
    for b in results.get("benchmarks", []):
        budget, think, score = b.get("think_budget"), b.get("mean_think_tokens"), b.get("pass@1")
        if isinstance(budget, int) and isinstance(think, (int, float)) and isinstance(score, (int, float)):
            out.setdefault(str(b.get("benchmark") or b.get("data")), []).append((budget, float(think), float(score)))
    return {name: sorted(points) for name, points in out.items()}


def _label(run: Any, benchmark: str, many: bool) -> str:
    model = run.results.get("settings", {}).get("model") or run.name
    return f"{model} · {benchmark}" if many else str(model)


def plot_thinking(evals: Sequence[Any], folder: Path) -> list[Path]:
    """test_time_scaling.png (pass@1 vs mean think tokens, a line per model) and think_tokens.png
    (mean think tokens per budget, against the budget itself); nothing without a sweep."""
    from r1cli.report import _figure, _save

    curves = [(run, name, points) for run in evals for name, points in sweep_points(run.results).items()]
    if not curves:
        return []
    many = len({name for _, name, _ in curves}) > 1
    fig = _figure((7.0, 4.8))
    ax = fig.add_subplot()
    for i, (run, name, points) in enumerate(curves):
        xs, ys = [p[1] for p in points], [100 * p[2] for p in points]
        ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=_label(run, name, many))
        for budget, x, y in zip((p[0] for p in points), xs, ys):
            ax.annotate(str(budget), (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("mean think tokens (log scale; labels: the budget)")
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("Test-time scaling: accuracy against thinking spent")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    written = [_save(fig, folder / "test_time_scaling.png")]
    fig = _figure((7.0, 4.8))
    ax = fig.add_subplot()
    top = max(p[0] for _, _, points in curves for p in points)
    ax.plot([1, top], [1, top], color="0.7", linestyle="--", label="the budget")
    for i, (run, name, points) in enumerate(curves):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=f"C{i % 10}",
                label=_label(run, name, many))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("thinking budget (tokens)")
    ax.set_ylabel("mean think tokens")
    ax.set_title("Think tokens spent per budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    written.append(_save(fig, folder / "think_tokens.png"))
    return written


def protocol_warnings(evals: Sequence[Any]) -> list[str]:
    """One line per setting that differs between the compared evaluations (none for one run).

    >>> from types import SimpleNamespace as R
    >>> protocol_warnings([R(name="a", results={"settings": {"protocol": "r1", "max_new_tokens": 32768}}),
    ...                    R(name="b", results={"settings": {"protocol": None, "max_new_tokens": 512}})])
    ['comparing results made under different protocols: protocol r1 (a) vs none (b); max_new_tokens 32768 (a) vs 512 (b)']
    """
    if len(evals) < 2:
        return []
    diffs = []
    for key in PROTOCOL_KEYS:
        values = [run.results.get("settings", {}).get(key) for run in evals]
        if any(k in run.results.get("settings", {}) for run in evals for k in (key,)) and len(
                {repr(v) for v in values}) > 1:
            diffs.append(f"{key} " + " vs ".join(f"{'none' if v is None else v} ({run.name})"
                                                 for v, run in zip(values, evals)))
    if not diffs:
        return []
    return ["comparing results made under different protocols: " + "; ".join(diffs)]
