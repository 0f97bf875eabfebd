"""The inference-engine options every sampling command shares, and `build_engine`.

A command declares the options it offers with these aliases (each defaults to None = not given)
and passes them all to `build_engine`, which refuses an option the chosen engine does not use
(a usage error, exit 2) and fills in each engine's own defaults:

    eng = build_engine(engine, model, base_url=base_url, concurrency=concurrency, dtype=dtype, …)
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli._common import complete_engine

EngineOpt = Annotated[
    str,
    typer.Option("--engine", autocompletion=complete_engine,
                 help="Inference engine: hf (transformers, any machine), vllm (in-process vLLM, "
                      "CUDA GPU), openai (an OpenAI-compatible server at --base-url)."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL",
                 help="openai engine: the server's API root, e.g. http://127.0.0.1:8000/v1 (a bare host gets /v1)."),
]
ApiKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--api-key-env", metavar="VAR",
                 help="openai engine: environment variable holding the API key (default: OPENAI_API_KEY when "
                      "set). The key itself is never printed."),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="openai engine: requests in flight at once (default 16).")
]
RequestTimeoutOpt = Annotated[
    float | None,
    typer.Option("--request-timeout", min=0.001, metavar="SECONDS",
                 help="openai engine: give up on a request after this long, then retry it (default 600)."),
]
MaxRetriesOpt = Annotated[
    int | None,
    typer.Option("--max-retries", min=0,
                 help="openai engine: retries of a request on 429, 5xx, timeouts and dropped connections, with "
                      "exponential backoff and Retry-After (default 5)."),
]
TensorParallelSizeOpt = Annotated[
    int | None, typer.Option("--tensor-parallel-size", min=1, help="vllm engine: GPUs one model is split over (default 1).")
]
GpuMemoryUtilizationOpt = Annotated[
    float | None,
    typer.Option("--gpu-memory-utilization", min=0.01, max=1.0,
                 help="vllm engine: share of GPU memory for weights and KV cache (default 0.9)."),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option("--dtype", help="hf, vllm engines: float32, bfloat16 or float16 (default: hf: bf16 on GPU and on "
                                 "CPUs with bf16 instructions, else fp32; vllm: the checkpoint's)."),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option("--batch-size", min=1,
                 help="Sequences per engine call (default: hf 64; vllm 512; openai max(64, --concurrency))."),
]

# which option each engine takes (by keyword), and the flag that sets it
APPLIES: dict[str, frozenset[str]] = {
    "hf": frozenset({"batch_size", "dtype"}),
    "vllm": frozenset({"batch_size", "dtype", "tensor_parallel_size", "gpu_memory_utilization"}),
    "openai": frozenset({"batch_size", "base_url", "api_key_env", "concurrency", "request_timeout", "max_retries"}),
}
DEFAULT_MODEL = "smollm2-135m"  # for the engines that load the model themselves
DEFAULTS: dict[str, dict[str, Any]] = {"hf": {"batch_size": 64}}


def flag(option: str) -> str:
    """The command-line spelling of an engine option: base_url → --base-url."""
    return "--" + option.replace("_", "-")


def engine_options(engine: str, model: str | None, **opts: Any) -> tuple[str | None, dict[str, Any]]:
    """(model, keyword arguments) for `get_engine`, after checking which options apply.

    Options that are None were not given. An option the engine does not use, or an openai engine
    without --base-url, is a usage error naming the flag.
    """
    from r1cli.engines import ENGINES, unknown_engine

    if engine not in ENGINES:
        raise unknown_engine(engine)
    given = {k: v for k, v in opts.items() if v is not None}
    unknown = sorted(set(given) - set().union(*APPLIES.values()))
    if unknown:
        raise TypeError(f"build_engine() got unknown options: {', '.join(unknown)}")
    wrong = sorted(set(given) - APPLIES[engine])
    if wrong:
        users = sorted(e for e in APPLIES if wrong[0] in APPLIES[e])
        raise typer.BadParameter(f"{flag(wrong[0])} applies to --engine {' or '.join(users)}, not {engine}",
                                 param_hint=flag(wrong[0]))
    if engine == "openai" and "base_url" not in given:
        raise typer.BadParameter("--engine openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1)",
                                 param_hint="--base-url")
    if engine != "openai" and model is None:
        model = DEFAULT_MODEL
    if engine != "openai":  # the served model's name is the server's business
        from r1cli.models import check_spec

        check_spec(model)  # a misspelt alias fails here, before the engine imports torch
    return model, {**DEFAULTS.get(engine, {}), **given}


def build_engine(engine: str, model: str | None, **opts: Any) -> Any:
    """The engine `engine` for `model` (None: smollm2-135m for hf/vllm, the served model for openai),
    with the options the command received (None = not given)."""
    from r1cli.engines import get_engine

    model, kwargs = engine_options(engine, model, **opts)
    return get_engine(engine, model, **kwargs)  # type: ignore[arg-type]
