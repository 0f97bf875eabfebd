"""The steps of scripts/gpu_check.py, each run in its own process.

    python scripts/gpu_check_steps.py serve     # imports once, then forks one process per step request

Importing torch, transformers, TRL and datasets takes 7-15 s, and every step needs most of them:
paid per step that would be a quarter of the 8 minutes. So one server process imports them (without
touching CUDA) and forks a fresh child per step; the child leads its own process group, so the
driver can kill it at its time limit, and it initialises CUDA itself, so its peak memory is its own.
Requests and replies are JSON lines on stdin/stdout: {"step", "spec", "results", "log"} →
{"pid"}, then {"code"} when the child ends.

A step appends one JSON object per measurement to its results file as soon as it has it, so a
step killed at its time limit still leaves what it measured; a failure appends {"error": …}.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Emit = Callable[[dict[str, Any]], None]


def _sync(torch: Any) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_memory(torch: Any) -> dict[str, Any]:
    """Peak GPU memory torch allocated in this process; on CPU, the process's peak RSS."""
    if torch.cuda.is_available():
        return {"peak_gib": torch.cuda.max_memory_allocated() / 2**30, "memory": "gpu"}
    return {"peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "memory": "rss"}


# ---- probe: environment, bandwidth, matmul --------------------------------------------------------------


def probe(spec: dict[str, Any], emit: Emit) -> None:
    import importlib.metadata

    import torch

    versions = {}
    for dist in ("torch", "transformers", "accelerate", "trl", "datasets", "pyarrow", "pandas", "peft",
                 "math-verify"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None

    device = spec["device"]
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    emit({"kind": "env", "device": name, "versions": versions, "cuda": torch.version.cuda})
    # Bandwidth: a device-to-device copy reads and writes each byte once, so it moves 2× the buffer.
    n = spec["probe_mib"] * 2**20 // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    seconds = _timed(torch, lambda: dst.copy_(src), min_s=0.5)
    emit({"kind": "bandwidth", "bytes_per_s": 2 * n * 2 / seconds, "buffer_mib": spec["probe_mib"]})
    del src, dst
    size = spec["matmul_n"]
    dtype = getattr(torch, spec.get("dtype", "bfloat16"))  # the dtype the rollout decodes in
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    seconds = _timed(torch, lambda: a @ b, min_s=0.5)
    emit({"kind": "matmul", "flops_per_s": 2 * size**3 / seconds, "n": size, "dtype": str(dtype).removeprefix("torch.")})


def _timed(torch: Any, fn: Callable[[], Any], *, min_s: float) -> float:
    """Seconds per call of `fn`: 3 warm-up calls, then doubling rounds until one lasts `min_s`."""
    for _ in range(3):
        fn()
    _sync(torch)
    reps = 4
    while True:
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(torch)
        seconds = time.perf_counter() - start
        if seconds >= min_s or reps >= 4096:
            return seconds / reps
        reps *= 2


# ---- build: random-initialised weights from the carried configs ------------------------------------------


def build(spec: dict[str, Any], emit: Emit) -> None:
    """r1 loads a model folder with weights (`from_pretrained`), so the configs get random weights here."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    src, dest = Path(spec["src"]), Path(spec["dest"])
    if spec.get("tiny"):
        from gpu_check import write_models  # the script beside this one

        write_models(src, tiny=True)
    torch.manual_seed(0)
    for folder in sorted((src / "configs").iterdir()):
        start = time.perf_counter()
        config = AutoConfig.from_pretrained(folder)
        with torch.device(spec["device"]):  # initialise where the model runs: seconds on a GPU for 1.4B
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, spec.get("dtype", "bfloat16")))
        model.generation_config = GenerationConfig.from_pretrained(folder)
        out = dest / folder.name
        model.save_pretrained(out)
        for item in (src / "tokenizer").iterdir():
            shutil.copy2(item, out / item.name)
        params = sum(p.numel() for p in model.parameters())
        emit({"kind": "model", "name": folder.name, "params": params, "seconds": time.perf_counter() - start,
              "layers": config.num_hidden_layers, "hidden": config.hidden_size})
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# ---- rollout: r1's hf engine at several batch sizes ----------------------------------------------------


def rollout(spec: dict[str, Any], emit: Emit) -> None:
    import torch

    from r1cli.engines import SamplingParams, get_engine
    from r1cli.rollout import RolloutStats
    from r1cli.rollout import rollout as run_rollout
    from r1cli.tasks import generate

    largest = max(p * n for p, n in spec["batches"])
    engine = get_engine("hf", spec["model"], batch_size=largest, dtype=spec["dtype"])
    model = engine.model
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    elem = next(model.parameters()).element_size()
    emit({"kind": "model", "params": sum(p.numel() for p in model.parameters()),
          "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
          # K and V, per layer, per KV head: what one cached token costs to read at each decode step
          "kv_bytes_per_token": 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * elem,
          "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")})
    records = list(generate("arithmetic", max(p for p, _ in spec["batches"]), seed=1))
    located = [(f"arithmetic:{i}", r) for i, r in enumerate(records)]
    engine.generate(["warm-up"], SamplingParams(n=1, max_new_tokens=4))  # kernels and allocator, untimed
    for prompts, samples in spec["batches"]:
        # Random weights rarely emit EOS; ignore_eos makes every completion exactly new_tokens long.
        # top_p=1: a random model's next-token distribution is nearly flat, so top-p 0.95 would take
        # the sampler's full-vocabulary sort every step (0.5 s per step for 64 rows on 2 CPU cores),
        # a cost a trained model's peaked distribution never pays.
        params = SamplingParams(n=samples, max_new_tokens=spec["new_tokens"], temperature=0.6, top_p=1.0, seed=0,
                                ignore_eos=True)
        engine.batch_size = prompts * samples  # one engine call per batch: the batch size measured
        stats = RolloutStats()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        _sync(torch)
        start = time.perf_counter()
        groups = list(run_rollout(located[:prompts], engine, params, prompts_per_call=prompts, stats=stats))
        _sync(torch)
        seconds = time.perf_counter() - start
        prompt_tokens = [g[0]["prompt_tokens"] for g in groups]
        emit({"kind": "batch", "batch": prompts * samples, "prompts": prompts, "samples": samples,
              "tokens": stats.tokens, "seconds": seconds, "tok_s": stats.tokens / seconds,
              "new_tokens": spec["new_tokens"], "prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
              **_peak_memory(torch)})


# ---- grpo and sft: the CLI, in this process (so that peak memory is this run's) -----------------------------


def _cli(argv: list[str]) -> None:
    from r1cli.cli import app

    code = app(argv, standalone_mode=False, prog_name="r1")
    if code:
        raise RuntimeError(f"r1 {argv[0]} exited with {code} (its message is in the log above)")


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _step_times(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """s/step over the steps after the first (which pays for compilation and warm-up), and the first."""
    times = [r["step_time"] for r in rows if isinstance(r.get("step_time"), (int, float))]
    later = times[1:] or times
    return {"steps": len(rows), "first_step_s": times[0] if times else None,
            "s_per_step": sum(later) / len(later) if later else None}


def grpo(spec: dict[str, Any], emit: Emit) -> None:
    """`r1 grpo` with r1's engine generating (`--generation r1`) or TRL's (`--generation trl`)."""
    import torch

    from r1cli.jsonl import dumps
    from r1cli.tasks import generate
    from r1cli.training.grpo import GRPOSettings

    choice: list[str] = []
    if "generation" in GRPOSettings.own_fields():
        choice = ["--generation", spec["generation"]]
    elif spec["generation"] != "trl":  # before --generation existed, TRL's generation was the only one
        emit({"kind": "grpo", "generation": spec["generation"], "available": False})
        return

    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    data = work / "prompts.jsonl"
    data.write_text("".join(dumps(r) for r in generate("arithmetic", 32, seed=2)), encoding="utf-8")
    run_dir = work / "run"
    start = time.perf_counter()
    _cli(["grpo", "-m", spec["model"], "--data", str(data), "-r", "accuracy", "-r", "format", "--template",
          "r1-zero", "-n", str(spec["generations"]), "--batch-size", str(spec["batch"]),
          "--max-completion-length", str(spec["tokens"]), "--max-steps", "3", "-o", str(run_dir), "-q", *choice])
    rows = _metrics(run_dir)
    emit({"kind": "grpo", "generation": spec["generation"], "available": True, "seconds": time.perf_counter() - start, **_step_times(rows),
          "completion_length": rows[-1].get("completion_length") if rows else None,
          "dtype": _run_dtype(run_dir), **_peak_memory(torch)})


def _run_dtype(run_dir: Path) -> str:
    """bf16/fp16/fp32: the precision the trainer ran with, from the run's r1_config.json."""
    config = json.loads((run_dir / "r1_config.json").read_text(encoding="utf-8"))
    trainer = next((v for k, v in config.items() if k.endswith("_config") and isinstance(v, dict)), {})
    return "bf16" if trainer.get("bf16") else "fp16" if trainer.get("fp16") else "fp32"


def sft(spec: dict[str, Any], emit: Emit) -> None:
    import torch

    from r1cli.jsonl import dumps
    from r1cli.tasks import generate

    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    data = work / "sft.jsonl"
    rows = []
    for r in generate("arithmetic", 64, seed=3):
        # a long reasoning-like completion, so that examples fill most of --max-length
        steps = " ".join(f"Step {k}: we rewrite the expression and check each operation again." for k in range(24))
        rows.append({"prompt": r["prompt"], "completion": f"<think>{steps}</think><answer>{r['answer']}</answer>"})
    data.write_text("".join(dumps(r) for r in rows), encoding="utf-8")
    run_dir = work / "run"
    start = time.perf_counter()
    _cli(["sft", "-m", spec["model"], "--data", str(data), "--batch-size", str(spec["batch"]), "--max-length",
          str(spec["length"]), "--max-steps", "3", "-o", str(run_dir), "-q"])
    metrics = _metrics(run_dir)
    times = _step_times(metrics)
    tokens = [r.get("tokens") for r in metrics]
    tok_s = None
    if len(metrics) > 1 and all(isinstance(t, (int, float)) for t in tokens):
        later = [r["step_time"] for r in metrics[1:]]
        tok_s = (tokens[-1] - tokens[0]) / sum(later)  # tokens of the steps after the first, over their time
    elif metrics and isinstance(tokens[-1], (int, float)):
        tok_s = tokens[-1] / metrics[-1]["step_time"]
    emit({"kind": "sft", "seconds": time.perf_counter() - start, **times, "tok_s": tok_s,
          "dtype": _run_dtype(run_dir), **_peak_memory(torch)})


# ---- eval --from: the scoring path, on records whose pass@1 is known -------------------------------------


def eval_records() -> tuple[list[dict[str, Any]], float]:
    """4 questions × 2 samples: question 0 right twice, the others right once → pass@1 = 0.625."""
    records = []
    for q in range(4):
        gold = str(q * 7 + 3)
        for sample in range(2):
            right = q == 0 or sample == 0
            said = gold if right else str(q * 7 + 4)
            records.append({"id": f"q{q}", "prompt": f"What is {q * 7} + 3?", "answer": gold, "sample": sample,
                            "completion": f"<think>{q * 7} plus 3.</think><answer>\\boxed{{{said}}}</answer>",
                            "finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": 16,
                            "model": "gpu-check"})
    return records, (1.0 + 0.5 * 3) / 4


def evaluate(spec: dict[str, Any], emit: Emit) -> None:
    from r1cli.jsonl import dumps

    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    records, expected = eval_records()
    path = work / "samples.jsonl"
    path.write_text("".join(dumps(r) for r in records), encoding="utf-8")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "r1cli", "eval", "--from", str(path), "-o", str(work / "out"),
                             "-q"], capture_output=True, text=True)
    sys.stderr.write(result.stderr)
    if result.returncode:
        raise RuntimeError(f"r1 eval --from exited with {result.returncode}: {result.stderr.strip()[-300:]}")
    metrics = json.loads(result.stdout.splitlines()[0])
    got = metrics["pass@1"]
    emit({"kind": "eval", "seconds": time.perf_counter() - start, "pass@1": got, "expected": expected,
          "questions": metrics.get("questions"), "format": metrics.get("format")})
    if abs(got - expected) > 1e-9:
        raise RuntimeError(f"r1 eval --from gave pass@1 {got}, expected {expected}")


STEPS: dict[str, Callable[[dict[str, Any], Emit], None]] = {
    "probe": probe, "build": build, "rollout": rollout, "grpo-r1": grpo, "grpo-trl": grpo, "sft": sft,
    "eval": evaluate,
}


def run_one(name: str, spec: dict[str, Any], results: Path) -> int:
    def emit(row: dict[str, Any]) -> None:
        with open(results, "a", encoding="utf-8") as fp:
            fp.write(json.dumps(row) + "\n")

    try:
        STEPS[name](spec, emit)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the step's row, with its traceback in the log
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        emit({"error": f"{type(exc).__name__}: {first}"[:300]})
        return 1
    return 0


# What the steps import, loaded once before forking. None of them initialises CUDA on import.
PRELOAD = ("torch", "transformers", "datasets", "trl", "math_verify", "r1cli.cli", "r1cli.engines.hf",
           "r1cli.training.grpo", "r1cli.training.sft", "r1cli.evaluation")


def serve() -> int:
    import importlib

    start = time.perf_counter()
    failed = {}
    preload = os.environ.get("GPU_CHECK_PRELOAD")  # a comma list instead of PRELOAD ("" = none: tests)
    for module in PRELOAD if preload is None else [m for m in preload.split(",") if m]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the step that needs it fails and says so
            failed[module] = f"{type(exc).__name__}: {exc}"[:200]
            traceback.print_exc()
    if "trl" in sys.modules and "trl" not in failed:
        try:
            from trl import GRPOTrainer, SFTTrainer  # noqa: F401 - TRL loads its trainers lazily
        except Exception as exc:  # noqa: BLE001
            failed["trl trainers"] = f"{type(exc).__name__}: {exc}"[:200]
    _reply({"ready": time.perf_counter() - start, "failed": failed, "fork_ok": _fork_check()})
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the step: its own session (killable as a group), output to the log
            os.setsid()
            log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = run_one(request["step"], request["spec"], Path(request["results"]))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _reply({"code": os.waitstatus_to_exitcode(status)})
    return 0


def _fork_check() -> bool | None:
    """Can a child forked from here use CUDA? None where there is no CUDA to use.

    A CUDA call in this process before the fork (a library asking `torch.cuda.is_available()` on
    import, without PYTORCH_NVML_BASED_CUDA_CHECK=1) would make every forked child fail with
    "Cannot re-initialize CUDA in forked subprocess"; the driver then starts each step afresh.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.version.cuda or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return None
    pid = os.fork()
    if pid == 0:
        signal.alarm(60)
        try:
            torch.zeros(1, device="cuda").add_(1)
            torch.cuda.synchronize()
        except BaseException:  # noqa: BLE001 - any failure means: do not fork steps
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        sys.exit(serve())
    sys.exit(run_one(sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])))
