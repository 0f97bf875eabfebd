"""Shared fixtures: an isolated R1_HOME, no hub access, fixed seeds, and cached test models."""

from __future__ import annotations

import importlib.util
import random
import sys

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not _cuda_available():  # torch is imported only when a gpu test is collected
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
    if importlib.util.find_spec("vllm") is None:
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="needs vLLM (pip install 'r1cli[vllm]')"))


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="session", autouse=True)
def r1_home(tmp_path_factory: pytest.TempPathFactory):
    """Point R1_HOME and HF_HOME at session temp folders and keep the hub offline.

    huggingface_hub reads HF_* variables when first imported, which is why test modules must not
    import transformers at module level.
    """
    patch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("r1_home")
    patch.setenv("R1_HOME", str(home))
    patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("TOKENIZERS_PARALLELISM", "false")
    yield home
    patch.undo()


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    if "torch" in sys.modules:  # never import torch just to seed it
        sys.modules["torch"].manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model(r1_home) -> str:
    """Folder of the `tiny` model (random 2-layer Llama + SmolLM2 tokenizer), built once."""
    from r1cli.models import resolve_model

    return resolve_model("tiny")


@pytest.fixture(scope="session")
def smollm2(r1_home) -> str:
    """Folder of SmolLM2-135M-Instruct converted from the packaged GGUF (~20 s the first time)."""
    from r1cli.models import resolve_model

    return resolve_model("smollm2-135m")
