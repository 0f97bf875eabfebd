"""scripts/gpu-check.sh: the table's arithmetic and rows, the install logic, the step server's time
limit, and the CPU dry run end to end (so the GPU script cannot rot between GPU runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import gpu_check  # noqa: E402
import gpu_check_table  # noqa: E402

# ---- bounds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "weights", "kv", "context", "bw", "flops", "params", "bw_tok_s", "compute_tok_s"),
    [
        # batch 1, no cache: weights / bandwidth per token
        (1, 2e9, 0, 0, 4e12, 8e14, 1e9, 2000.0, 400000.0),
        # 256 rows amortise the weights; the cache (256 × 100 × 1e4 = 2.56e8 B) adds to each step
        (256, 2e9, 1e4, 100, 4e12, 8e14, 1e9, 256 * 4e12 / (2e9 + 2.56e8), 400000.0),
        # a cache as large as the weights halves the batch-1 bound
        (1, 1e9, 1e6, 1000, 1e12, 1e14, 5e8, 500.0, 100000.0),
        # unmeasured probes give no bound rather than a wrong one
        (8, 2e9, 0, 0, None, None, 1e9, None, None),
    ],
)
def test_decode_bounds(batch, weights, kv, context, bw, flops, params, bw_tok_s, compute_tok_s):
    got = gpu_check_table.decode_bounds(batch=batch, weight_bytes=weights, kv_bytes_per_token=kv, context=context,
                                        bandwidth=bw, flops=flops, params=params)
    assert got["bandwidth_tok_s"] == pytest.approx(bw_tok_s) if bw_tok_s else got["bandwidth_tok_s"] is None
    assert got["compute_tok_s"] == pytest.approx(compute_tok_s) if compute_tok_s else got["compute_tok_s"] is None


# ---- rows: every check has its row, whatever happened ---------------------------------------------------

MODEL = {"kind": "model", "params": 1e9, "weight_bytes": 2e9, "kv_bytes_per_token": 0.0, "dtype": "bfloat16"}
PROBES = [{"kind": "env", "device": "H200", "versions": {"torch": "2.11"}},
          {"kind": "bandwidth", "bytes_per_s": 4e12}, {"kind": "matmul", "flops_per_s": 8e14}]


def _batch(size: int, tok_s: float) -> dict:
    prompts = 1 if size <= 8 else size // 8
    return {"kind": "batch", "batch": size, "prompts": prompts, "samples": size // prompts, "tokens": 100,
            "seconds": 1.0, "tok_s": tok_s, "new_tokens": 0, "prompt_tokens": 0, "peak_gib": 1.0, "memory": "gpu"}


def _train(kind: str, dtype: str = "bf16", **extra) -> dict:
    return {"kind": kind, "steps": 3, "s_per_step": 1.0, "first_step_s": 2.0, "peak_gib": 3.0, "memory": "gpu",
            "dtype": dtype, "available": True, **extra}


def _report(mode: str = "gpu", **steps) -> dict:
    return {"mode": mode, "started": "now", "budget_s": 480, "steps": {
        name: {"status": status, "seconds": 1.0, "results": results, "error": None if status == "ok" else "why"}
        for name, (status, results) in steps.items()}}


def _full(b1: float, b256: float, mode: str = "gpu", dtype: str = "bf16") -> dict:
    batches = [_batch(1, b1), _batch(8, b1 * 4), _batch(64, b1 * 8), _batch(256, b256)]
    return _report(mode, install=("ok", [{"installed": ["trl.whl"], "present": ["xxhash"], "unmet": []}]),
                   probe=("ok", PROBES), build=("ok", [{"kind": "model", "name": "m", "params": 1e9}] * 2),
                   rollout=("ok", [MODEL, *batches]), **{"grpo-r1": ("ok", [_train("grpo", dtype)]),
                                                          "grpo-trl": ("ok", [_train("grpo", dtype)])},
                   sft=("ok", [_train("sft", dtype, tok_s=1e4)]),
                   eval=("ok", [{"kind": "eval", "pass@1": 0.625, "expected": 0.625}]))


def _by_check(report: dict) -> dict:
    rows = gpu_check_table.rows_from(report)
    assert [r["check"] for r in rows] == list(gpu_check.ROWS)
    return {r["check"]: r for r in rows}


# bandwidth bound at batch 1 = 4e12 / 2e9 = 2000 tok/s
@pytest.mark.parametrize(
    ("b1", "b256", "batch1_verdict", "batch256_verdict"),
    [(1000.0, 12000.0, "met", "12.0× met"),  # 50% of the bound, 12× batch 1
     (999.0, 9990.0, "missed", "10.0× met"),  # just under half the bound; exactly 10×
     (400.0, 2000.0, "missed", "5.0× missed")],
)
def test_gpu_targets(b1, b256, batch1_verdict, batch256_verdict):
    rows = _by_check(_full(b1, b256))
    assert rows["rollout batch 1"]["verdict"] == batch1_verdict
    assert rows["rollout batch 256"]["verdict"] == batch256_verdict
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["grpo 3 steps (r1 generation)"]["verdict"] == "met"
    assert rows["eval --from"]["verdict"] == "met"


def test_training_outside_bf16_misses_the_target_and_the_dry_run_claims_nothing():
    rows = _by_check(_full(1000.0, 12000.0, dtype="fp32"))
    assert rows["sft 3 steps"]["verdict"] == rows["grpo 3 steps (trl generation)"]["verdict"] == "missed"
    dry = _by_check(_full(1000.0, 12000.0, mode="dry", dtype="fp32"))
    assert {dry[c]["verdict"] for c in ("rollout batch 1", "sft 3 steps")} == {"n/a on CPU"}
    assert dry["rollout batch 256"]["verdict"].endswith("n/a on CPU")


def test_rows_of_a_run_stopped_early():
    # rollout killed after batch 8; grpo-trl never ran; nothing else either
    report = _report(install=("ok", [{"installed": [], "present": [], "unmet": ["pyarrow 21.0 (wanted by datasets: >=24)"]}]),
                     probe=("ok", PROBES), build=("ok", [{"kind": "model", "name": "m", "params": 1e9}] * 2),
                     rollout=("timeout", [MODEL, _batch(1, 500.0), _batch(8, 900.0)]),
                     **{"grpo-r1": ("failed", [])})
    rows = _by_check(report)
    assert rows["install"]["verdict"].startswith("pyarrow 21.0")
    assert [rows[f"rollout batch {b}"]["status"] for b in (1, 8, 64, 256)] == ["timeout"] * 4
    assert rows["rollout batch 8"]["measured"].startswith("900.0 tok/s")
    assert rows["rollout batch 64"]["measured"] == "-"
    assert rows["grpo 3 steps (r1 generation)"]["status"] == "failed"
    assert {rows[c]["status"] for c in ("grpo 3 steps (trl generation)", "sft 3 steps", "eval --from")} == {"not run"}
    table = gpu_check_table.render_markdown(report, list(rows.values()))
    assert table.count("\n| ") == len(gpu_check.ROWS) + 1  # header + one line per check


def test_a_step_that_ran_but_measured_nothing_is_not_ok():
    report = _full(1000.0, 12000.0)
    report["steps"]["probe"]["results"] = [PROBES[0]]  # neither probe wrote its figure
    rows = _by_check(report)
    assert rows["probe: bandwidth"]["status"] == rows["probe: bf16 matmul"]["status"] == "missing"


def test_grpo_without_r1_generation_is_reported_not_failed():
    report = _full(1000.0, 12000.0)
    report["steps"]["grpo-r1"]["results"] = [{"kind": "grpo", "generation": "r1", "available": False}]
    row = _by_check(report)["grpo 3 steps (r1 generation)"]
    assert (row["status"], row["verdict"]) == ("ok", "n/a")


# ---- install: only what the environment lacks; the requirements it leaves unmet ------------------------


def _wheel(folder: Path, dist: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    meta = "\n".join(["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}",
                      *(f"Requires-Dist: {r}" for r in requires)])
    info = f"{dist}-{version}.dist-info"
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", meta + "\n")
        zf.writestr(f"{info}/WHEEL", wheel)
        zf.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


def test_wheel_manifest_reads_requirements_without_extras(tmp_path):
    _wheel(tmp_path, "trl", "1.16.0", ["datasets>=4.7.0", 'pytest; extra == "dev"', "pandas>=2.1.1"])
    (entry,) = gpu_check.wheel_manifest(tmp_path)
    assert (entry["dist"], entry["version"], entry["import"]) == ("trl", "1.16.0", "trl")
    assert entry["requires"] == ["datasets>=4.7.0", "pandas>=2.1.1"]


@pytest.mark.parametrize(
    ("requirement", "unmet"),
    [("pytest", False), ("pytest>=1", False), ("pytest>=999", True), ("no-such-dist-r1cli", True),
     ('pytest>=999; python_version < "3"', False)],  # a marker that does not apply is no requirement
)
def test_unmet_requirements(requirement, unmet):
    manifest = [{"dist": "x", "requires": [requirement]}]
    assert bool(gpu_check.unmet_requirements(manifest, sys.path)) is unmet


def test_install_takes_only_missing_distributions(tmp_path):
    wheels = (("pytest", "pytest"), ("r1cli-absent-dist", "r1cli_absent_module"))
    (tmp_path / "wheels").mkdir()
    _wheel(tmp_path / "wheels", "r1cli_absent_dist", "1.0", ["pytest>=999"])
    (tmp_path / "manifest.json").write_text(json.dumps({"wheels": gpu_check.wheel_manifest(tmp_path / "wheels")}))
    info = gpu_check.install(tmp_path, tmp_path / "site", timeout=120, wheels=wheels)
    assert info["installed"] == ["r1cli_absent_dist-1.0-py3-none-any.whl"]
    assert info["present"] == ["pytest"]
    assert [u.split()[0] for u in info["unmet"]] == ["pytest"]  # the carried wheel wants a newer pytest
    assert (tmp_path / "site" / "r1cli_absent_dist-1.0.dist-info").is_dir()


def test_install_without_carried_wheels_names_the_fix(tmp_path):
    with pytest.raises(gpu_check.CheckError, match="no carried wheels for r1cli-absent-dist") as info:
        gpu_check.install(tmp_path, tmp_path / "site", timeout=10, wheels=(("r1cli-absent-dist", "r1cli_absent"),))
    assert "--prepare" in info.value.hint


# ---- the step server: a step past its limit is killed, with its children ----------------------------------


@pytest.mark.parametrize("fork", [True, False])  # False: the fallback when CUDA was touched before forking
def test_a_step_past_its_limit_is_killed_and_the_server_goes_on(tmp_path, fork):
    env = {**os.environ, "GPU_CHECK_PRELOAD": "", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "log"
    server = gpu_check.StepServer(env, log, timeout=60)
    assert server.fork  # no CUDA here: nothing to poison
    server.fork = fork
    try:
        start = time.monotonic()
        # eval starts `python -m r1cli eval` as a grandchild: several seconds, well past 0.5 s
        got = server.run("eval", {"work": str(tmp_path / "eval")}, timeout=0.5, work=tmp_path)
        assert got["status"] == "timeout" and got["error"] == "stopped at its 0.5 s limit"
        assert time.monotonic() - start < 20
        assert _processes_mentioning(str(tmp_path / "eval")) == []  # `r1 eval`, the grandchild, went too
        got = server.run("no-such-step", {}, timeout=30, work=tmp_path)  # the server still answers
        assert got["status"] == "failed" and got["error"].startswith("KeyError")
    finally:
        server.close()
    assert server.proc.returncode == 0


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue  # ended meanwhile
    return found


def test_table_doctests():
    import doctest

    assert doctest.testmod(gpu_check_table).failed == 0


# ---- the shell front door -----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--help"], 0, "--dry-run"),
    (["--bogus"], 2, "unknown option '--bogus'"),
])
def test_script_options(args, code, text):
    result = subprocess.run(["bash", str(SCRIPTS / "gpu-check.sh"), *args], capture_output=True, text=True)
    assert result.returncode == code
    assert text in result.stdout + result.stderr


def test_gpu_run_without_a_gpu_says_so(tmp_path):
    if subprocess.run(["sh", "-c", "nvidia-smi -L"], capture_output=True).returncode == 0:
        pytest.skip("this machine has a GPU")
    result = subprocess.run(["bash", str(SCRIPTS / "gpu-check.sh")], capture_output=True, text=True,
                            env={**os.environ, "OUT": str(tmp_path)})
    assert result.returncode == 1
    assert "no NVIDIA GPU" in result.stderr and "--dry-run" in result.stderr
    assert result.stdout == ""


# ---- the dry run, end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_fills_every_row(tmp_path, tiny_model):
    """The same steps as on a GPU, on CPU with tiny models: ~60 s of CPU time, 210-225 s of wall time
    on a 2-core machine with a load average of 14.

    `tiny_model` caches the SmolLM2 tokenizer in R1_HOME first (the GGUF read is not the script's).
    """
    budget = os.environ.get("GPU_CHECK_BUDGET", "300")  # generous: on a busy 2-core machine it took 220 s
    result = subprocess.run(["bash", str(SCRIPTS / "gpu-check.sh"), "--dry-run"], capture_output=True, text=True,
                            env={**os.environ, "OUT": str(tmp_path), "GPU_CHECK_BUDGET": budget}, timeout=600)
    log = (tmp_path / "gpu-check.log").read_text() if (tmp_path / "gpu-check.log").exists() else ""
    assert result.returncode == 0, result.stderr + log[-3000:]
    data = json.loads((tmp_path / "gpu-check.json").read_text())
    rows = {r["check"]: r for r in data["rows"]}
    assert list(rows) == list(gpu_check.ROWS)
    assert {r["status"] for r in rows.values()} == {"ok"}, [r for r in rows.values() if r["status"] != "ok"]
    assert (tmp_path / "gpu-check.md").read_text() == result.stdout
    batches = {r["batch"]: r for r in data["steps"]["rollout"]["results"] if r["kind"] == "batch"}
    assert sorted(batches) == [1, 8, 64, 256]
    assert all(b["tokens"] == b["batch"] * b["new_tokens"] for b in batches.values())  # forced lengths
    for step in ("grpo-r1", "grpo-trl", "sft"):
        (train,) = data["steps"][step]["results"]
        assert train.get("available") is False or train["steps"] == 3
    assert rows["eval --from"]["verdict"] == "met"
