"""Pictures and tables of runs: training curves from `metrics.jsonl`, comparisons from `results.json`.

The library half of `r1 report`. Training runs (an `r1 grpo` folder, or its `metrics.jsonl`) give
one PNG per quantity against step — total reward, each reward, accuracy, mean response length and
KL, the curves the R1 paper shows (its Figures 2 and 3: accuracy and response length vs step) —
smoothed with an exponential moving average over the faint raw curve, several runs overlaid.
Evaluations (`r1 eval -o DIR`'s `results.json`) give a markdown table and a bar chart across
models and benchmarks. matplotlib is imported only to draw, headless (its Agg canvas, no pyplot
state), and is optional: `pip install 'r1cli[plot]'`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1cli.errors import BadInput, OutputError, R1Error

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
# (key in metrics.jsonl, title, y label), in the order they are drawn; per-reward curves follow "reward".
CURVES = (
    ("reward", "Total reward", "mean reward per completion"),
    ("accuracy", "Accuracy", "accuracy (mean accuracy reward)"),
    ("completion_length", "Response length", "mean completion length (tokens)"),
    ("kl", "KL divergence to the reference policy", "KL (k3 estimate)"),
)
OVERVIEW = ("reward", "accuracy", "completion_length", "kl")
# Whether a run is learning (GRPO): equal-reward groups, gradient, clipping, entropy; then SFT's
# curves and the held-out evaluation (`--eval-data`). Each is drawn where some run logged it.
DIAGNOSTICS = (
    ("frac_reward_zero_std", "Groups with equal rewards", "share of groups with reward std 0 (no signal)"),
    ("grad_norm", "Gradient norm", "grad norm (before clipping)"),
    ("clip_ratio/region_mean", "Clipped tokens", "share of tokens with a clipped ratio"),
    ("clip_ratio/low_mean", "Clipped tokens (low side)", "share clipped below 1 - epsilon"),
    ("clip_ratio/high_mean", "Clipped tokens (high side)", "share clipped above 1 + epsilon_high"),
    ("entropy", "Policy entropy", "mean token entropy (nats)"),
    ("loss", "Training loss", "loss"),
    ("mean_token_accuracy", "Token accuracy", "mean next-token accuracy on the completions"),
)
EVAL_CURVES = (
    ("eval/pass@1", "Held-out pass@1", "pass@1 (band: 95% interval)"),
    ("eval/format", "Held-out format rate", "mean format reward"),
    ("eval/mean_tokens", "Held-out response length", "mean completion tokens"),
)


@dataclass
class TrainingRun:
    name: str
    path: str
    rows: list[dict[str, Any]]


@dataclass
class EvalRun:
    name: str
    path: str
    results: dict[str, Any]


# ---- reading -----------------------------------------------------------------------------------


def load_inputs(paths: Sequence[str]) -> tuple[list[TrainingRun], list[EvalRun]]:
    """Training runs and evaluations from run folders, metrics.jsonl files and results.json files.

    A folder gives its metrics.jsonl, its results.json, or both. Runs are named after their
    folder (a file's parent folder, unless the file has a name of its own); repeated names get
    the path instead.
    """
    training: list[TrainingRun] = []
    evals: list[EvalRun] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            metrics, results = path / METRICS_FILE, path / RESULTS_FILE
            if not metrics.is_file() and not results.is_file():
                raise BadInput(f"{given}: no {METRICS_FILE} or {RESULTS_FILE} in this folder",
                               hint="pass an r1 grpo run folder, an r1 eval -o folder, or the files themselves")
            if metrics.is_file():
                training.append(TrainingRun(_run_name(metrics), str(metrics), read_metrics(metrics)))
            if results.is_file():
                evals.append(EvalRun(_run_name(results), str(results), read_results(results)))
        elif path.is_file():
            if path.suffix.lower() == ".json":
                evals.append(EvalRun(_run_name(path), str(path), read_results(path)))
            else:
                training.append(TrainingRun(_run_name(path), str(path), read_metrics(path)))
        else:
            raise BadInput(f"{given}: no such file or folder", hint="check the path")
    _unique_names(training)
    _unique_names(evals)
    return training, evals


def _run_name(path: Path) -> str:
    if path.name in (METRICS_FILE, RESULTS_FILE):
        parent = path.resolve().parent
        return parent.name or str(parent)
    return path.stem


def _unique_names(runs: Sequence[TrainingRun | EvalRun]) -> None:
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = run.path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (`r1 grpo`'s: one per logging step, with `step`)."""
    rows = []
    with open(path, encoding="utf-8") as fp:
        for lineno, line in enumerate(fp, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):  # a run still writing: its last line is not finished
                    break
                raise BadInput(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
                raise BadInput(f"{path}:{lineno}: not a metrics row (no 'step')",
                               hint=f"r1 report reads the {METRICS_FILE} that r1 grpo writes, or a results.json")
            rows.append(row)
    if not rows:
        raise BadInput(f"{path}: no metrics rows yet", hint="a run writes one row per logging step")
    return rows


def read_results(path: Path) -> dict[str, Any]:
    """An `r1 eval` results.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BadInput(f"{path}: not an r1 eval results file (no 'benchmarks' list)",
                       hint="pass the results.json that `r1 eval -o DIR` writes")
    return data


# ---- pure helpers -------------------------------------------------------------------------------


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start (TensorBoard's smoothing); weight 0 = raw.

    >>> ema([1.0, 0.0, 0.0], 0.5)
    [1.0, 0.3333333333333333, 0.14285714285714285]
    >>> ema([2.0, 4.0], 0.0)
    [2.0, 4.0]
    """
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, last = [], 0.0
    for i, value in enumerate(values, start=1):
        last = weight * last + (1 - weight) * value
        out.append(last / (1 - weight**i))
    return out


def series(rows: Iterable[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of a key, leaving out rows where it is missing, null or NaN.

    >>> series([{"step": 1, "kl": 0.5}, {"step": 2, "kl": None}, {"step": 3}, {"step": 4, "kl": 0.25}], "kl")
    ([1.0, 4.0], [0.5, 0.25])
    """
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            steps.append(float(row["step"]))
            values.append(float(value))
    return steps, values


def reward_names(runs: Sequence[TrainingRun]) -> list[str]:
    """The per-reward keys (`reward/<name>`) any run logged, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runs:
        for row in run.rows:
            for key in row:
                if key.startswith("reward/"):
                    seen.setdefault(key, None)
    return list(seen)


def _fmt(value: Any, pct: bool = True) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def results_rows(evals: Sequence[EvalRun]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table: one row per (benchmark, run); percentages."""
    ks = sorted({int(k[5:]) for e in evals for b in e.results["benchmarks"] for k in b
                 if k.startswith("pass@") and k[5:].isdigit()} - {1})
    header = ["benchmark", "run", "model", "questions", "n", "pass@1 %", "95% CI", "cons@n %",
              *(f"pass@{k} %" for k in ks), "tokens", "truncated %", "format %"]
    rows = []
    order = {name: i for i, name in enumerate(benchmark_names(evals))}
    entries = [(e, b) for e in evals for b in e.results["benchmarks"]]
    entries.sort(key=lambda eb: order[str(eb[1].get("data"))])
    for run, b in entries:
        n = b.get("samples")
        ci = b.get("pass@1_ci")
        model = b.get("model") or run.results.get("settings", {}).get("model") or "-"
        rows.append([str(b.get("data")), run.name, str(model), str(b.get("questions", "-")), str(n),
                     _fmt(b.get("pass@1")),
                     f"{_fmt(ci[0])}–{_fmt(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else "-",
                     _fmt(b.get(f"cons@{n}")), *(_fmt(b.get(f"pass@{k}")) for k in ks),
                     _fmt(b.get("mean_tokens"), pct=False), _fmt(b.get("truncated")), _fmt(b.get("format"))])
    return header, rows


def benchmark_names(evals: Sequence[EvalRun]) -> list[str]:
    seen: dict[str, None] = {}
    for e in evals:
        for b in e.results["benchmarks"]:
            seen.setdefault(str(b.get("data")), None)
    return list(seen)


def training_rows(runs: Sequence[TrainingRun], smooth: float) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the training summary: steps, and each curve's first → last smoothed value."""
    header = ["run", "steps", *(title.lower() for _, title, _ in CURVES[:3]), "kl"]
    rows = []
    for run in runs:
        cells = [run.name, f"{int(max(r['step'] for r in run.rows)):,}"]
        for key in OVERVIEW:
            _, values = series(run.rows, key)
            if not values:
                cells.append("-")
                continue
            smoothed = ema(values, smooth)
            cells.append(f"{_fmt(smoothed[0], pct=False)} → {_fmt(smoothed[-1], pct=False)}")
        rows.append(cells)
    return header, rows


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table; numbers right-aligned.

    >>> print(markdown(["run", "pass@1 %"], [["a|b", "12.5"]]))
    | run | pass@1 % |
    |---|---:|
    | a\\|b | 12.5 |
    """
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    return cell == "-" or bool(re.fullmatch(r"[-\d.,–→ ]+", cell))


# ---- drawing -----------------------------------------------------------------------------------


def _figure(size: tuple[float, float]) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise R1Error("r1 report draws its plots with matplotlib, which is not installed",
                      hint="pip install 'r1cli[plot]'") from None
    return Figure(figsize=size, dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    """Write the PNG atomically: a plot is never half-written."""
    import io

    from r1cli.files import write_atomic

    png = io.BytesIO()
    fig.savefig(png, format="png")
    return write_atomic(path, png.getvalue())


def _curve(ax: Any, runs: Sequence[TrainingRun], key: str, title: str, ylabel: str, smooth: float) -> bool:
    drawn = False
    for i, run in enumerate(runs):
        steps, values = series(run.rows, key)
        if not values:
            continue
        color = f"C{i % 10}"
        if smooth > 0 and len(values) > 1:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=1)
        ax.plot(steps, ema(values, smooth), color=color, linewidth=2, label=run.name,
                marker="o" if len(values) < 3 else None)
        if key == "eval/pass@1":  # held-out points are sparse: no smoothing, the interval as a band
            lo, hi = series(run.rows, "eval/pass@1_lo"), series(run.rows, "eval/pass@1_hi")
            if lo[1] and len(lo[1]) == len(hi[1]):
                ax.fill_between(lo[0], lo[1], hi[1], color=color, alpha=0.15)
        drawn = True
    ax.set_title(title)
    _whole_steps(ax)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(title="run", fontsize="small")
    return drawn


def _whole_steps(ax: Any) -> None:
    """Steps are counted in whole numbers: no 1.25, 1.5, … ticks on short runs (or on one held-out point)."""
    import math as _math

    from matplotlib.ticker import MaxNLocator

    xs = [x for line in ax.get_lines() for x in line.get_xdata()]
    if xs and max(xs) - min(xs) < 10:
        lo, hi = _math.floor(min(xs)), _math.ceil(max(xs))
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        ax.set_xlim(lo - 0.25, hi + 0.25)
        ax.set_xticks(range(lo, hi + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def eval_keys(runs: Sequence[TrainingRun]) -> list[str]:
    """The `eval/cons@K` keys any run logged (K = its --eval-samples)."""
    seen: dict[str, None] = {}
    for run in runs:
        for row in run.rows:
            for key in row:
                if re.fullmatch(r"eval/cons@\d+", key):
                    seen.setdefault(key, None)
    return list(seen)


def curve_specs(runs: Sequence[TrainingRun]) -> list[tuple[str, str, str]]:
    """(key, title, y label) of every curve to draw: per-reward curves after the total reward,
    then the diagnostics, SFT's loss and token accuracy, and the held-out evaluation."""
    specs = [CURVES[0]]
    specs += [(k, f"Reward: {k.split('/', 1)[1]}", f"mean {k.split('/', 1)[1]} reward") for k in reward_names(runs)]
    cons = [(k, f"Held-out {k.split('/', 1)[1]}", "majority-vote accuracy") for k in eval_keys(runs)]
    return specs + list(CURVES[1:]) + list(DIAGNOSTICS) + [EVAL_CURVES[0], *cons, *EVAL_CURVES[1:]]


def plot_training(runs: Sequence[TrainingRun], folder: Path, *, smooth: float = 0.6) -> list[Path]:
    """One PNG per logged quantity against step (runs overlaid), and `training.png` with the four main ones."""
    written = []
    suffix = f" (EMA {smooth:g}; raw faint)" if smooth > 0 else ""
    for key, title, ylabel in curve_specs(runs):
        if not any(series(r.rows, key)[1] for r in runs):
            continue  # e.g. kl with beta 0, accuracy without the accuracy reward
        fig = _figure((7, 4.5))
        _curve(fig.add_subplot(), runs, key, title + ("" if key.startswith("eval/") else suffix), ylabel,
               0.0 if key.startswith("eval/") else smooth)
        written.append(_save(fig, folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.png"))
    present = [spec for spec in CURVES if any(series(r.rows, spec[0])[1] for r in runs)]
    if not present:  # an SFT run: its loss and token accuracy
        present = [spec for spec in DIAGNOSTICS[-2:] if any(series(r.rows, spec[0])[1] for r in runs)]
    if present:
        fig = _figure((12, 8) if len(present) > 2 else (12, 4.5))
        rows = 2 if len(present) > 2 else 1
        for i, (key, title, ylabel) in enumerate(present, start=1):
            _curve(fig.add_subplot(rows, 2, i), runs, key, title, ylabel, smooth)
        fig.suptitle("Training curves" + suffix)
        written.append(_save(fig, folder / "training.png"))
    return written


def plot_results(evals: Sequence[EvalRun], folder: Path, *, metric: str = "pass@1") -> Path:
    """A grouped bar chart: one group per benchmark, one bar per run (pass@1 with its 95% interval)."""
    names = benchmark_names(evals)
    fig = _figure((max(6.0, 1.6 * len(names) * max(1, len(evals)) ** 0.5 + 3), 4.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(evals))
    for i, run in enumerate(evals):
        by_name = {str(b.get("data")): b for b in run.results["benchmarks"]}
        xs, heights, errors = [], [], [[], []]
        for j, name in enumerate(names):
            b = by_name.get(name)
            value = _metric(b, metric) if b else None
            if value is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            heights.append(100 * value)
            ci = b.get("pass@1_ci") if metric == "pass@1" else None
            errors[0].append(100 * (value - ci[0]) if ci else 0.0)
            errors[1].append(100 * (ci[1] - value) if ci else 0.0)
        label = run.name
        model = run.results.get("settings", {}).get("model")
        if model and model != run.name:
            label += f" ({model})"
        bars = ax.bar(xs, heights, width * 0.95, color=f"C{i % 10}", label=label,
                      yerr=errors if metric == "pass@1" else None, capsize=3)
        ax.bar_label(bars, fmt="%.1f", fontsize="small", padding=2)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_xlabel("benchmark")
    ax.set_ylim(0, 105)
    ax.set_title(f"{metric} by benchmark" + (" (error bars: 95% bootstrap interval)" if metric == "pass@1" else ""))
    ax.legend(title="run", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder / f"eval_{re.sub(r'[^A-Za-z0-9_.-]+', '_', metric)}.png")


def _metric(benchmark: Mapping[str, Any], metric: str) -> float | None:
    """A benchmark's value of `metric`; 'cons@n' reads the run's own cons@<samples>."""
    key = f"cons@{benchmark.get('samples')}" if metric == "cons@n" else metric
    value = benchmark.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def write_markdown(folder: Path, text: str) -> Path:
    from r1cli.files import write_atomic

    return write_atomic(folder / "report.md", text)


def report(paths: Sequence[str], folder: Path | None, *, smooth: float = 0.6,
           metric: str = "pass@1") -> tuple[str, list[Path]]:
    """The markdown tables (for stdout) and, with a folder, the PNGs and report.md written there."""
    if not 0 <= smooth < 1:
        raise R1Error(f"--smooth must be in [0, 1), got {smooth}", hint="0 draws the raw curves; 0.6 is the default")
    training, evals = load_inputs(paths)
    if folder is not None and evals and not any(
            _metric(b, metric) is not None for e in evals for b in e.results["benchmarks"]):
        raise BadInput(f"no benchmark has '{metric}'", hint="use pass@1, cons@n, or a pass@k the runs report")
    sections, written = [], []
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    if training:
        sections.append("## Training runs\n\n" + markdown(*training_rows(training, smooth)))
        if folder is not None:
            written += plot_training(training, folder, smooth=smooth)
    if evals:
        sections.append("## Evaluations\n\n" + markdown(*results_rows(evals)))
        if folder is not None:
            written.append(plot_results(evals, folder, metric=metric))
            from r1cli.report_thinking import plot_thinking

            written += plot_thinking(evals, folder)  # thinking-budget sweeps only
    text = "\n\n".join(sections) + "\n"
    if folder is not None:
        images = "\n".join(f"![{p.stem}]({p.name})" for p in written)
        written.append(write_markdown(folder, text + ("\n" + images + "\n" if images else "")))
    return text, written
