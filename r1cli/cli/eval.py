"""`r1 eval`: DeepSeek-R1's evaluation protocol — k samples per question, pass@1, cons@k, pass@k."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from r1cli.cli._common import (
    AnswerFieldOpt, ExtractAnswerOpt, PrefillOpt, PromptFieldOpt, QuietOpt, RewardArgOpt, SeedOpt, SplitOpt, SystemOpt,
    TemplateOpt, complete_model, err, progress_bar, reward_params, summary,
)
from r1cli.cli._engine import EngineArg, build_engine, with_engine_options
from r1cli.cli.rollout import AnswerBudgetOpt, MaxNewTokensOpt, TemperatureOpt, TopKOpt, TopPOpt

DataOpt = Annotated[
    list[str] | None,
    typer.Option("--data", "-d", metavar="BENCHMARK",
                 help="A benchmark, repeatable: a preset (aime24, math500, gsm8k, gpqa-diamond), PRESET=FILE "
                      "(a preset's fields on a local copy), a .jsonl/.json/.parquet file, or a HF dataset name."),
]
FromOpt = Annotated[
    list[str] | None,
    typer.Option("--from", metavar="FILE",
                 help="Rollout or scored records to evaluate instead of generating (repeatable; each one a "
                      "benchmark). Records without rewards are scored first (accuracy, format)."),
]
ThinkBudgetOpt = Annotated[
    str | None,
    typer.Option("--think-budget", metavar="N[,N,…]",
                 help="End the think block after N tokens (budget forcing); several budgets = a sweep, generated "
                      "once: each smaller budget forks from the shared prefix (hf engine)."),
]
MinThinkOpt = Annotated[
    int | None,
    typer.Option("--min-think", min=1, metavar="M", help="Replace a </think> that comes before M think tokens by "
                                                         "'Wait' and let the model continue."),
]
ProtocolOpt = Annotated[
    str | None,
    typer.Option("--protocol", help="A published evaluation protocol: r1 = 32,768 new tokens, T 0.6, top-p 0.95, "
                                    "k by benchmark (AIME 64, MATH-500 4, GPQA-Diamond 8, LiveCodeBench 16)."),
]
PassKOpt = Annotated[
    str | None,
    typer.Option("--pass-k", metavar="K,K,…", help="Report unbiased pass@k for these k (each ≤ -n; default 1, 4, 16, … up to n)."),
]


@with_engine_options(aliases={"--batch-size": "batch_size"})  # --engine and every engine's options
def eval_cmd(
    model: Annotated[str | None, typer.Option("--model", "-m", autocompletion=complete_model, help="Model: hub id, local folder, or alias (smollm2-135m, tiny); default smollm2-135m.")] = None,
    data: DataOpt = None,
    from_files: FromOpt = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Samples per question (the k of cons@k; R1 used 4–64).")] = 4,
    max_new_tokens: MaxNewTokensOpt = 512,
    temperature: TemperatureOpt = 0.6,
    top_p: TopPOpt = 0.95,
    top_k: TopKOpt = 0,
    seed: SeedOpt = 0,
    pass_k: PassKOpt = None,
    think_budget: ThinkBudgetOpt = None,
    min_think: MinThinkOpt = None,
    answer_budget: AnswerBudgetOpt = None,
    protocol: ProtocolOpt = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="End a completion at this string, which it keeps, as in r1 rollout (repeatable; e.g. </answer> with --template r1-zero).")] = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    prefill: PrefillOpt = None,
    instruction: Annotated[str | None, typer.Option("--instruction", help="Text appended to every prompt (default: a preset's own, R1's 'Please reason step by step…'; none for files; '' = none).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N questions of each benchmark.")] = None,
    engine: EngineArg = "hf",  # type: ignore[assignment]  # the decorator hands over a checked EngineChoice
    split: SplitOpt = None,
    prompt_field: PromptFieldOpt = None,
    answer_field: AnswerFieldOpt = None,
    extract_answer: ExtractAnswerOpt = None,
    reward_arg: RewardArgOpt = None,
    rescore: Annotated[bool, typer.Option("--rescore", help="With --from: score every record again (e.g. with other --reward-arg), not only those without rewards.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=0, help="Scoring processes (default: one per CPU; 0 = in this process).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="DIR", help="Folder for results.json and each benchmark's scored samples (JSONL).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a model R1's way: k samples per question (T=0.6, top-p 0.95), pass@1, cons@k, pass@k.

    stdout: one JSON line of metrics per benchmark (data, questions, samples, pass@1 and its 95%
    bootstrap interval, cons@n, pass@k, mean_tokens, truncated, format, answered). stderr: a table.

    \b
        r1 eval -m smollm2-135m --data gsm8k --data math500 -n 4 -o evals/smollm2 | jq '."pass@1"'
        r1 eval -m runs/zero --data test.jsonl --template r1-zero -n 16 --pass-k 1,4,16
        r1 eval --from scored.jsonl --pass-k 1,8
    """
    from r1cli import evaluation
    from r1cli.jsonl import dumps

    settings = _settings(locals())
    params = reward_params(reward_arg or [], None, list(evaluation.EVAL_REWARDS))
    folder = Path(output) if output else None
    results, names = [], set()
    if from_files:
        for path in from_files:
            with progress_bar(f"scoring {path}", total=None, quiet=quiet) as bar:
                metrics, scored = evaluation.evaluate_file(path, settings, workers=workers, reward_params=params,
                                                           rescore=rescore, on_record=lambda: bar.update(advance=1))
            results.append(_emit(metrics, scored, {"source": path}, folder, names, dumps))
    else:
        benches = [evaluation.load_benchmark(d, split=split, prompt_field=prompt_field, answer_field=answer_field,
                                             extract=extract_answer, instruction=instruction, limit=limit, seed=seed)
                   for d in data or ()]  # every benchmark loads (or fails) before the model does
        eng = build_engine(engine, model)
        settings = _resolved(settings, eng)
        for bench in benches:
            with progress_bar(bench.name, total=len(bench.records), quiet=quiet) as bar:
                runs = evaluation.evaluate_budgets(bench, eng, settings, workers=workers, reward_params=params,
                                                   on_question=lambda: bar.update(advance=1))
            for metrics, scored in runs:
                results.append(_emit(metrics, scored, bench.info, folder, names, dumps))
    if not quiet:
        _show(_table(results))
    if folder is not None:
        config = {**settings.to_json(), "rewards": list(evaluation.EVAL_REWARDS), "reward_params": params}
        path = evaluation.write_results(folder, config, results)
        summary(f"wrote {path} and {len(results)} samples file(s)", quiet=quiet)


def _settings(flags: dict[str, Any]) -> Any:
    """EvalSettings from the flags; usage errors (exit 2) for combinations that cannot work."""
    from r1cli.evaluation import EvalSettings

    if flags["from_files"] and flags["data"]:
        raise typer.BadParameter("--from files are the benchmarks: drop --data", param_hint="--from")
    if flags["from_files"] and flags["model"]:
        raise typer.BadParameter("--from evaluates existing samples: drop -m (or drop --from to generate)",
                                 param_hint="--from")
    if not flags["from_files"] and not flags["data"]:
        raise typer.BadParameter("give a benchmark: --data gsm8k (a preset), --data FILE, or --from SAMPLES.jsonl",
                                 param_hint="--data")
    mapping = [f for f in ("split", "prompt_field", "answer_field", "extract_answer") if flags[f] is not None]
    if mapping and flags["data"] and all(_is_preset(d) for d in flags["data"]):
        raise typer.BadParameter("presets bring their own split and fields: the mapping flags apply to files and "
                                 "dataset names", param_hint="--" + mapping[0].replace("_", "-"))
    protocol = flags["protocol"]
    protocol_values = {}
    if protocol is not None:
        from r1cli.evaluation import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise typer.BadParameter(f"unknown protocol '{protocol}': choose from {', '.join(PROTOCOLS)}",
                                     param_hint="--protocol")
        # the protocol sets these; a flag that says otherwise is a contradiction, not an override
        defaults = {"max_new_tokens": 512, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "samples": 4}
        for key, default in defaults.items():
            if flags[key] != default:
                raise typer.BadParameter(f"--protocol {protocol} sets {_flag(key)}: drop one of them",
                                         param_hint=_flag(key))
        protocol_values = {k: v for k, v in PROTOCOLS[protocol].items() if k in defaults and k != "samples"}
    options = flags["engine"].options.to_dict()
    try:
        budgets = _budgets(flags["think_budget"])
        flags = {**flags, **protocol_values}
        return EvalSettings(
            model=None if flags["from_files"] else flags["model"], engine=flags["engine"].name,
            template=flags["template"], system=flags["system"], prefill=flags["prefill"], samples=flags["samples"],
            temperature=flags["temperature"], top_p=flags["top_p"], top_k=flags["top_k"],
            max_new_tokens=flags["max_new_tokens"], seed=flags["seed"], pass_k=_ks(flags["pass_k"]),
            dtype=options.get("dtype"), batch_size=options.get("batch_size") or 64, limit=flags["limit"],
            instruction=flags["instruction"], from_files=tuple(flags["from_files"] or ()), protocol=protocol,
            think_budget=budgets, min_think=flags["min_think"], answer_budget=flags["answer_budget"],
            stop=tuple(flags["stop"] or ()))
    except ValueError as exc:
        hint = "--min-think" if "min-think" in str(exc) else "--pass-k"
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def _flag(key: str) -> str:
    return {"samples": "-n"}.get(key, "--" + key.replace("_", "-"))


def _budgets(text: str | None) -> tuple[int, ...] | None:
    """--think-budget 64,128,256 → (64, 128, 256)."""
    if text is None:
        return None
    try:
        budgets = tuple(sorted({int(b) for b in text.split(",") if b.strip()}))
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a list of token counts such as 64,128,256",
                                 param_hint="--think-budget") from None
    if not budgets or budgets[0] < 1:
        raise typer.BadParameter("budgets are token counts ≥ 1, e.g. --think-budget 64,128", param_hint="--think-budget")
    return budgets


def _is_preset(spec: str) -> bool:
    from r1cli.evaluation import PRESETS

    return spec.partition("=")[0] in PRESETS


def _ks(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a list of integers such as 1,4,16", param_hint="--pass-k") from None
    if not ks:
        raise typer.BadParameter("give at least one k, e.g. --pass-k 1,4", param_hint="--pass-k")
    return ks


def _resolved(settings: Any, engine: Any) -> Any:
    """The settings as the engine resolved them: the template its model gets (chat or none when not
    given), the model's name (the served one for openai) and the engine's batch size."""
    from r1cli.rollout import resolve_template

    from r1cli.eval_protocol import model_revision

    model = getattr(engine, "model", None)
    dtype = str(getattr(model, "dtype", "")).removeprefix("torch.") or settings.dtype
    return dataclasses.replace(settings, template=resolve_template(settings.template, engine),
                               model=settings.model or engine.model_name,
                               batch_size=engine.batch_size, dtype=dtype or None,
                               model_revision=model_revision(settings.model) if settings.engine != "openai" else None)


def _emit(metrics: dict[str, Any], scored: list[dict[str, Any]], info: dict[str, Any], folder: Path | None,
          names: set[str], dumps: Any) -> dict[str, Any]:
    """Print a benchmark's metrics line on stdout; write its samples to the folder; return its results entry."""
    from r1cli.evaluation import samples_file, write_samples

    sys.stdout.write(dumps(metrics))
    sys.stdout.flush()
    entry = {**metrics, **{k: v for k, v in info.items() if k not in metrics}}
    if folder is not None:
        entry["samples_file"] = write_samples(folder, samples_file(metrics["data"], names), scored).name
    return entry


def _show(table: Any) -> None:
    """Print on stderr; a log file or pipe gets the whole table, not rich's default 80 columns of it."""
    from rich.console import Console

    console = err if err.is_terminal else Console(stderr=True, width=max(err.width, 120), highlight=False)
    console.print(table)


def _table(results: list[dict[str, Any]]) -> Any:
    """The human summary on stderr: percentages of questions (pass@k, cons) or of samples (trunc., format)."""
    from rich.table import Table

    ks = sorted({int(k[5:]) for r in results for k in r if k.startswith("pass@") and k[5:].isdigit()} - {1})
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("benchmark", overflow="fold", min_width=12)
    same_n = {r["samples"] for r in results}
    avg = str(next(iter(same_n))) if len(same_n) == 1 else "n"  # pass@1 over k samples: lighteval's avg@k
    think = any(r.get("mean_think_tokens") is not None for r in results)
    # the data (stdout, results.json) hold fractions; this table shows percentages, so says "%"
    for name in ("questions", "n", f"avg@{avg} %", "95% CI %", f"cons@{avg} %", *(f"pass@{k} %" for k in ks),
                 "tokens", *(("think",) if think else ()), "trunc. %", "format %"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        n = r["samples"]
        ci = r.get("pass@1_ci")
        table.add_row(r["data"], f"{r['questions']:,}", str(n), _pct(r["pass@1"]),
                      f"{_pct(ci[0])}–{_pct(ci[1])}" if ci else "-", _pct(r.get(f"cons@{n}")),
                      *(_pct(r.get(f"pass@{k}")) for k in ks),
                      "-" if r.get("mean_tokens") is None else f"{r['mean_tokens']:,.0f}",
                      *((_tokens(r.get("mean_think_tokens")),) if think else ()),
                      _pct(r.get("truncated")), _pct(r.get("format")))
    return table


def _tokens(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
