"""Held-out evaluation while training (`--eval-data FILE --eval-every N --eval-samples K`).

Every N optimisation steps the current weights answer the held-out prompts through r1's engine
(the trainer's model object, in eval mode, bf16 autocast where fast), and `r1 eval`'s own
functions score and summarise them (r1cli.evaluation: accuracy + format rewards;
r1cli.metrics.summarize: pass@1 with its bootstrap interval, cons@K, format rate, mean tokens).
The figures join that step's metrics.jsonl line as `eval/…` keys. With `--save-best METRIC` the
weights with the best value so far are saved to `OUTPUT/best/` (model and tokenizer, no
optimizer state) with `best.json` saying which step and value they are.

Sampling follows the R1 evaluation protocol (paper §3): T=0.6, top-p 0.95, K samples each.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from r1cli.errors import R1Error

BEST_DIR = "best"
BEST_FILE = "best.json"
EVAL_TEMPERATURE = 0.6
EVAL_TOP_P = 0.95
# Metrics --save-best may rank by: higher is better for each. (mean_tokens and truncated have no
# better direction that holds for every task.)
_BEST = re.compile(r"^(pass@\d+|cons@\d+|format|answered)$")


def best_metric(name: str | None) -> str | None:
    """The `eval/…` key --save-best ranks by; names may drop the `eval/` prefix.

    >>> best_metric("pass@1"), best_metric("eval/cons@4"), best_metric(None)
    ('eval/pass@1', 'eval/cons@4', None)
    """
    if name is None:
        return None
    bare = name.removeprefix("eval/")
    if not _BEST.match(bare):
        raise R1Error(f"--save-best {name}: not a metric it can rank by",
                      hint="choose pass@1, pass@K, cons@K (K = --eval-samples), format or answered")
    return f"eval/{bare}"


def check_eval_settings(settings: Any) -> None:
    """The eval flags fit together (a training settings object with eval_data, eval_every, …)."""
    data, every = settings.eval_data, settings.eval_every
    if every is not None and every < 1:
        raise R1Error(f"--eval-every must be at least 1, got {every}")
    if settings.eval_samples < 1:
        raise R1Error(f"--eval-samples must be at least 1, got {settings.eval_samples}")
    if data is None and (every is not None or settings.save_best is not None):
        flag = "--eval-every" if every is not None else "--save-best"
        raise R1Error(f"{flag} needs held-out prompts", hint="add --eval-data FILE (prompt records with answers)")
    if data is not None and every is None:
        raise R1Error("--eval-data needs --eval-every N", hint="e.g. --eval-every 25 (optimisation steps)")
    metric = best_metric(settings.save_best)
    k = re.match(r"eval/(?:pass|cons)@(\d+)$", metric or "")
    if k and int(k.group(1)) > settings.eval_samples:
        raise R1Error(f"--save-best {settings.save_best} needs at least {k.group(1)} samples per prompt",
                      hint=f"raise --eval-samples to {k.group(1)}")


def eval_row(metrics: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """`summarize`'s figures as `eval/…` keys; the interval as `_lo`/`_hi`.

    >>> eval_row({"pass@1": 0.5, "pass@1_ci": [0.25, 0.75], "cons@4": 0.5, "questions": 8, "data": "x"}, 1.234)
    {'eval/pass@1': 0.5, 'eval/pass@1_lo': 0.25, 'eval/pass@1_hi': 0.75, 'eval/cons@4': 0.5, 'eval/questions': 8, 'eval/seconds': 1.23}
    """
    row: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "pass@1_ci":
            lo, hi = value if value else (None, None)
            row["eval/pass@1_lo"], row["eval/pass@1_hi"] = lo, hi
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row[f"eval/{key}"] = value
    row["eval/seconds"] = round(seconds, 2)
    return row


class HeldOut:
    """The held-out prompts and how to sample them; `run(model, tokenizer, step)` → `eval/…` figures."""

    def __init__(self, data: str, *, samples: int, max_new_tokens: int, seed: int, template: str | None,
                 system: str | None, prefill: str | None, stop: tuple[str, ...] = ()) -> None:
        from r1cli.evaluation import load_benchmark

        self.bench = load_benchmark(data)  # bad data fails here, before any model loads
        self.samples = samples
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.template, self.system, self.prefill, self.stop = template, system, prefill, stop

    def run(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        import torch

        from r1cli.engines import SamplingParams
        from r1cli.evaluation import benchmark_metrics, generate, score
        from r1cli.training.generation import PolicyEngine

        start = time.perf_counter()
        engine = PolicyEngine(model, tokenizer)
        params = SamplingParams(n=self.samples, max_new_tokens=self.max_new_tokens, temperature=EVAL_TEMPERATURE,
                                top_p=EVAL_TOP_P, seed=self.seed, stop=self.stop)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                rollouts = generate(self.bench.records, engine, params, template=self.template, system=self.system,
                                    prefill=self.prefill)
        finally:
            if was_training:
                model.train()
        scored = score(((f"held-out question {r['id']} sample {r['sample']}", r) for r in rollouts), workers=1)
        metrics = benchmark_metrics(self.bench.name, scored, seed=self.seed)
        return eval_row(metrics, time.perf_counter() - start)


def eval_callback(held_out: HeldOut, every: int, output_dir: Path, *, save_best: str | None = None,
                  template: Callable[[], str | None] | None = None) -> Any:
    """A TrainerCallback: every `every` steps evaluate on rank 0, add `eval/…` to that step's log
    line (it must come before the metrics callback), and keep the best weights in OUTPUT/best/.

    `template` is read when training starts (GRPO resolves its default template with the tokenizer).
    """
    from transformers import TrainerCallback

    metric = best_metric(save_best)

    class EvalCallback(TrainerCallback):
        def __init__(self) -> None:
            self.pending: dict[str, Any] = {}
            self.best: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if template is not None and held_out.template is None:
                held_out.template = template()
            best_file = output_dir / BEST_FILE
            if best_file.is_file():  # a resumed run keeps its best so far
                self.best = json.loads(best_file.read_text(encoding="utf-8")).get("value")

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):  # noqa: ANN001, ANN201
            if state.global_step % every or not state.is_world_process_zero:
                return
            unwrapped = getattr(model, "module", model)
            self.pending = held_out.run(unwrapped, processing_class)
            self.pending["eval/step"] = state.global_step
            value = self.pending.get(metric) if metric else None
            if isinstance(value, (int, float)) and (self.best is None or value > self.best):
                self.best = value
                save_best_model(unwrapped, processing_class, output_dir, metric, value, state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
            if logs is not None and self.pending and "train_runtime" not in logs:
                logs.update(self.pending)
                self.pending = {}

    return EvalCallback()


def save_best_model(model: Any, tokenizer: Any, output_dir: Path, metric: str, value: float, step: int) -> None:
    """OUTPUT/best/: the model and tokenizer (no optimizer state), replaced whole, and best.json."""
    import shutil

    final = output_dir / BEST_DIR
    tmp = output_dir / (BEST_DIR + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    from r1cli.files import write_atomic

    write_atomic(output_dir / BEST_FILE, json.dumps({"metric": metric, "value": value, "step": step}) + "\n")


def held_out_callbacks(settings: Any, *, max_new_tokens: int, seed: int, template: Callable[[], str | None],
                       prefill: str | None = None, stop: tuple[str, ...] = ()) -> list[Any]:
    """The eval callback of a training command's settings (eval_data, eval_every, eval_samples,
    save_best, system, output_dir), or none without --eval-data."""
    if settings.eval_data is None:
        return []
    held_out = HeldOut(settings.eval_data, samples=settings.eval_samples, max_new_tokens=max_new_tokens, seed=seed,
                       template=None, system=settings.system, prefill=prefill, stop=stop)
    return [eval_callback(held_out, settings.eval_every, settings.output_dir, save_best=settings.save_best,
                          template=template)]
