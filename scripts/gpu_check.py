"""One bounded check of r1's GPU paths, with figures against the hardware's limits.

    python scripts/gpu_check.py prepare [--dir .gpu-check]     # here, with PyPI: wheels, tokenizer, configs
    python scripts/gpu_check.py run [--dir .gpu-check] [--out DIR] [--dry-run] [--budget S]

`scripts/gpu-check.sh` is the front door (it finds the Python and passes `$OUT`); docs/gpu-check.md
says what each step measures and which targets apply. Every step runs in its own process
(`gpu_check_steps.py`) under its own time slice, so a hung or slow step is killed at its limit and
the table (written after every step) still holds every row.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STEPS_SCRIPT = HERE / "gpu_check_steps.py"
if str(HERE) not in sys.path:  # the table module sits beside this script
    sys.path.insert(0, str(HERE))

from gpu_check_table import render_markdown, rows_from  # noqa: E402

# (distribution, import name) that r1's GPU steps need beyond the GPU machine's image, whose package list
# already holds pandas, pyarrow, xxhash, psutil, pyyaml, httpx, fsspec, requests, sympy. pyarrow
# (55 MB) and pandas (12 MB) would not fit the 64 MiB the machine takes, so the image's are used and
# `install` reports whether they meet datasets' pins. xxhash (0.5 MB) rides along in case. gguf is
# left out: only the GGUF conversion, done here by `prepare`, needs it.
WHEELS: tuple[tuple[str, str], ...] = (
    ("trl", "trl"), ("datasets", "datasets"), ("dill", "dill"), ("multiprocess", "multiprocess"),
    ("math-verify", "math_verify"), ("latex2sympy2_extended", "latex2sympy2_extended"),
    ("antlr4-python3-runtime", "antlr4"), ("langdetect", "langdetect"), ("xxhash", "xxhash"),
)
SDIST_ONLY = frozenset({"langdetect"})  # no wheel on PyPI: built here (pure Python, py3-none-any)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
SIZE_LIMIT_MIB = 50  # the GPU machine takes 64 MiB with the working tree (~2 MiB): room for the tree

# Qwen2.5's architectures with the SmolLM2 tokenizer's 49,152-token vocabulary (the real models
# have 151,936): 1.5B → 1.39B parameters, 0.5B → 0.36B, both with tied embeddings as the originals.
ARCHS: dict[str, dict[str, int]] = {
    "qwen2.5-1.5b-arch": {"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
                          "num_key_value_heads": 2, "intermediate_size": 8960},
    "qwen2.5-0.5b-arch": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
                          "num_key_value_heads": 2, "intermediate_size": 4864},
}
TINY_ARCH = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128}
MAX_POSITIONS = 4096

# Seconds per step. GPU: 480 s in all (the 8-minute limit), each slice ~2x the step's expected time
# except where the sum forbids it. Dry run: under 2 minutes on a 2-core CPU.
SLICES = {
    "gpu": {"install": 30, "start": 50, "probe": 30, "build": 60, "rollout": 100, "grpo-r1": 80, "grpo-trl": 70,
            "sft": 35, "eval": 25},
    # dry: in proportion to what each step took on a 2-core CPU (imports 40 s, grpo 60 s each, sft
    # 30-45 s, build 5 s with the tokenizer cached, on a machine 5-6x oversubscribed)
    "dry": {"install": 3, "start": 20, "probe": 5, "build": 15, "rollout": 8, "grpo-r1": 18, "grpo-trl": 18,
            "sft": 20, "eval": 8},
}
BUDGET = {"gpu": 480, "dry": 115}
# Per-mode workloads: batches are prompts × samples per engine call (the targets compare 1 and 256).
WORKLOAD = {
    "gpu": {"batches": [[1, 1], [1, 8], [8, 8], [32, 8]], "new_tokens": 256, "grpo_generations": 8,
            "grpo_batch": 16, "grpo_tokens": 128, "sft_batch": 8, "sft_length": 512, "device": "cuda",
            "dtype": "bfloat16", "probe_mib": 2048, "matmul_n": 8192},
    # The dry run checks the plumbing, not speed. It decodes in fp32: on a 2-core CPU shared with
    # other jobs, bf16 matmuls fell to 0.2-0.4 GFLOP/s (oneDNN's threads contend) while fp32 held 5-10.
    "dry": {"batches": [[1, 1], [1, 8], [8, 8], [32, 8]], "new_tokens": 4, "grpo_generations": 2,
            "grpo_batch": 4, "grpo_tokens": 8, "sft_batch": 2, "sft_length": 64, "device": "cpu",
            "dtype": "float32", "probe_mib": 64, "matmul_n": 512},
}
ROWS = ("install", "probe: bandwidth", "probe: bf16 matmul", "build models", "rollout batch 1", "rollout batch 8",
        "rollout batch 64", "rollout batch 256", "grpo 3 steps (r1 generation)", "grpo 3 steps (trl generation)",
        "sft 3 steps", "eval --from")


class CheckError(Exception):
    """A problem the user fixes (named in the message, with a hint); the CLI prints it and exits 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# ---- prepare (here, with PyPI) -------------------------------------------------------------------


def pins() -> dict[str, str]:
    """The versions of WHEELS installed in this environment (the project's locked stack)."""
    out = {}
    for dist, _ in WHEELS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise CheckError(f"{dist} is not installed in {sys.executable}: its version is the pin",
                             hint="run with the project's environment (PYTHON=.venv/bin/python)") from None
    return out


def download_wheels(dest: Path, versions: dict[str, str]) -> None:
    """py3.12 manylinux x86_64 wheels of `versions` into `dest` (emptied first)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    binary = [f"{d}=={v}" for d, v in versions.items() if d not in SDIST_ONLY]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation",
          "cp", "--abi", "cp312", *platforms, "-d", str(dest), *binary])
    built = [f"{d}=={v}" for d, v in versions.items() if d in SDIST_ONLY]
    if built:
        _pip(["wheel", "-q", "--no-deps", "-w", str(dest), *built])
    for wheel in dest.glob("*.whl"):
        tags = wheel.name[:-4].split("-")[-3:]
        if tags[2] != "any" and not any(p in tags[2] for p in ("manylinux", "linux_x86_64")):
            raise CheckError(f"{wheel.name} is not a Linux x86-64 wheel")
        if tags[1] not in ("none", "cp312", "abi3"):
            raise CheckError(f"{wheel.name} is built for another Python than 3.12")
    for extra in set(dest.iterdir()) - set(dest.glob("*.whl")):
        extra.unlink()  # build leftovers: only wheels travel


def _pip(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode:
        raise CheckError(f"pip {args[0]} failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}")


def wheel_manifest(folder: Path) -> list[dict[str, Any]]:
    """Per wheel: distribution, version, file, import name and its Requires-Dist (extras left out)."""
    imports = {_norm(d): m for d, m in WHEELS}
    out = []
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode("utf-8")
        requires = [line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
        out.append({"dist": name, "version": version, "file": wheel.name, "import": imports.get(_norm(name)),
                    "requires": requires, "bytes": wheel.stat().st_size})
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def model_config(arch: dict[str, int], ids: dict[str, int | None], vocab: int) -> Any:
    """A Qwen2 config of `arch` sized to the tokenizer, tied embeddings, bf16."""
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab, max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True,
                       rms_norm_eps=1e-6, dtype="bfloat16", **arch, **ids)


def write_models(dest: Path, *, tiny: bool = False) -> dict[str, Any]:
    """The SmolLM2 tokenizer (from the packaged GGUF, via r1's `tiny` alias) and the model configs.

    Layout: `tokenizer/`, and `configs/NAME/` with config.json + generation_config.json, no weights:
    the `build` step initialises weights at random where the model runs (1.39B in bf16 = 2.8 GB).
    """
    from transformers import GenerationConfig

    from r1cli.models import load_tokenizer

    tokenizer = load_tokenizer("tiny")  # the SmolLM2 tokenizer and chat template, converted once and cached
    tokenizer.model_max_length = MAX_POSITIONS
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    shutil.rmtree(dest / "tokenizer", ignore_errors=True)
    shutil.rmtree(dest / "configs", ignore_errors=True)
    tokenizer.save_pretrained(dest / "tokenizer")
    out = {}
    for name, arch in ARCHS.items():
        folder = dest / "configs" / name
        model_config(TINY_ARCH if tiny else arch, ids, len(tokenizer)).save_pretrained(folder)
        GenerationConfig(**ids).save_pretrained(folder)
        out[name] = TINY_ARCH if tiny else arch
    return {"vocab": len(tokenizer), **ids, "archs": out}


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def prepare(dest: Path) -> dict[str, Any]:
    """Fill `dest` with everything the GPU run needs; refuse a folder too big to send along."""
    dest.mkdir(parents=True, exist_ok=True)
    versions = pins()
    download_wheels(dest / "wheels", versions)
    manifest = wheel_manifest(dest / "wheels")
    missing = sorted(set(versions) - {_denorm(m["dist"], versions) for m in manifest})
    if missing:
        raise CheckError(f"no wheel came for: {', '.join(missing)}")
    models = write_models(dest)
    info = {"wheels": manifest, "models": models, "prepared": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    (dest / "manifest.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    size = folder_mib(dest)
    info["mib"] = round(size, 2)
    if size > SIZE_LIMIT_MIB:
        raise CheckError(f"{dest} holds {size:.1f} MiB, over the {SIZE_LIMIT_MIB} MiB that can travel with the tree")
    return info


def _denorm(dist: str, versions: dict[str, str]) -> str:
    return next((d for d in versions if _norm(d) == _norm(dist)), dist)


# ---- install (on the GPU machine) ------------------------------------------------------------------


def missing_modules(wheels: tuple[tuple[str, str], ...] = WHEELS) -> list[str]:
    """Distributions of `wheels` whose import name this interpreter cannot find."""
    return [dist for dist, module in wheels if importlib.util.find_spec(module) is None]


def unmet_requirements(manifest: list[dict[str, Any]], paths: list[str]) -> list[str]:
    """'dist version (wanted by X: spec)' for each carried wheel's requirement the environment misses."""
    from packaging.requirements import Requirement

    have = {_norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=paths)
            if d.metadata["Name"]}
    out = []
    for entry in manifest:
        for text in entry["requires"]:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate():
                continue
            version = have.get(_norm(req.name))
            if version is None:
                out.append(f"{req.name} missing (wanted by {entry['dist']}: {text})")
            elif req.specifier and not req.specifier.contains(version, prereleases=True):
                out.append(f"{req.name} {version} (wanted by {entry['dist']}: {req.specifier})")
    return out


def install(prepared: Path, target: Path, timeout: float,
            wheels: tuple[tuple[str, str], ...] = WHEELS) -> dict[str, Any]:
    """Install the carried wheels of the distributions the image lacks into `target` (no index)."""
    missing = missing_modules(wheels)
    manifest_path = prepared / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))["wheels"] if manifest_path.is_file() else []
    files = [prepared / "wheels" / m["file"] for m in manifest if _denorm(m["dist"], dict(wheels)) in missing]
    if len(files) < len(missing):
        raise CheckError(f"no carried wheels for {', '.join(missing)}",
                         hint=f"run `bash scripts/gpu-check.sh --prepare` with PyPI, then copy {prepared} along with the tree")
    if files:
        target.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                 "--no-compile", "--no-cache-dir", "--find-links", str(prepared / "wheels"),
                                 "--target", str(target), *map(str, files)],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise CheckError(f"pip install failed: {result.stderr.strip()[-400:]}")
    carried = [m for m in manifest if _denorm(m["dist"], dict(wheels)) in missing]
    return {"installed": [f.name for f in files], "present": sorted(set(dict(wheels)) - set(missing)),
            "unmet": unmet_requirements(carried, [str(target), *sys.path])}


# ---- running the steps -------------------------------------------------------------------------------


class StepServer:
    """The `gpu_check_steps.py serve` process: imports once, forks one child per step (see there)."""

    def __init__(self, env: dict[str, str], log: Path, timeout: float) -> None:
        self.log = log
        with open(log, "a", encoding="utf-8") as fp:
            fp.write(f"\n===== start: importing torch, transformers, trl, datasets, r1cli (limit {timeout:.0f} s) =====\n")
        self.proc = subprocess.Popen([sys.executable, str(STEPS_SCRIPT), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(log, "a", encoding="utf-8"), env=env,
                                     cwd=REPO, text=True, start_new_session=True)
        self.env = env
        self.ready = self._read(timeout)
        if self.ready is None or "ready" not in self.ready:
            self.close()
            raise CheckError(f"the step server did not start within {timeout:.0f} s: {_last_line(log)}")
        # False: CUDA was touched before the fork, so every step starts as a fresh process instead
        self.fork = self.ready.get("fork_ok") is not False

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """The server's next reply, or None after `timeout` s or when it has exited."""
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=max(timeout, 0.01)):
                return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, name: str, spec: dict[str, Any], *, timeout: float, work: Path) -> dict[str, Any]:
        """Run one step; kill its process group at `timeout`. Returns status, seconds, results, error."""
        results = work / f"{name}.jsonl"
        results.unlink(missing_ok=True)
        with open(self.log, "a", encoding="utf-8") as fp:
            fp.write(f"\n===== {name} (limit {timeout:.0f} s) =====\n")
        start = time.monotonic()
        status = self._forked(name, spec, results, timeout) if self.fork else self._spawned(name, spec, results,
                                                                                            timeout)
        seconds = time.monotonic() - start
        lines = results.read_text(encoding="utf-8").splitlines() if results.is_file() else []
        out = [json.loads(line) for line in lines if line.strip()]
        error = next((r["error"] for r in out if "error" in r), None) if status != "ok" else None
        if status == "failed" and error is None:
            error = _last_line(self.log)
        if status == "timeout":
            error = f"stopped at its {timeout:.3g} s limit"
        return {"status": status, "seconds": round(seconds, 1), "results": [r for r in out if "error" not in r],
                "error": error}

    def _forked(self, name: str, spec: dict[str, Any], results: Path, timeout: float) -> str:
        start = time.monotonic()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"step": name, "spec": spec, "results": str(results),
                                          "log": str(self.log)}) + "\n")
        self.proc.stdin.flush()
        started = self._read(30)
        if started is None:
            raise CheckError(f"the step server stopped answering before {name}: {_last_line(self.log)}")
        done = self._read(timeout - (time.monotonic() - start))
        if done is None:
            _kill_group(started["pid"])
            self._read(15)  # the server reaps the killed child and reports it
            return "timeout"
        return "ok" if done.get("code") == 0 else "failed"

    def _spawned(self, name: str, spec: dict[str, Any], results: Path, timeout: float) -> str:
        with open(self.log, "a", encoding="utf-8") as fp:
            proc = subprocess.Popen([sys.executable, str(STEPS_SCRIPT), name, json.dumps(spec), str(results)],
                                    stdout=fp, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                    cwd=REPO, start_new_session=True)
            try:
                return "ok" if proc.wait(timeout=max(timeout, 0.01)) == 0 else "failed"
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                return "timeout"

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)


def _kill_group(pid: int) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what is left after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def child_env(mode: str, site: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    path = [str(site)] if site else []
    path += [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env.update({"PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"})
    # torch.cuda.is_available() through NVML: a plain call initialises CUDA and so poisons the fork of
    # the step server's children (see gpu_check_steps._fork_check)
    env.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if mode == "dry":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, even on a machine with a GPU
        # Tiny models gain nothing from a second thread, and on a busy 2-core machine two threads
        # contend: a 512² fp32 matmul measured 14.4 GFLOP/s with one thread, 3.8-4.6 with two.
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def check(prepared: Path, out: Path, *, mode: str, budget: float | None = None, t0: float | None = None,
          work: Path | None = None, slices: dict[str, float] | None = None) -> dict[str, Any]:
    """Run every step within `budget` seconds of `t0`; write the table after each step."""
    t0 = time.time() if t0 is None else t0
    budget = BUDGET[mode] if budget is None else budget
    deadline = t0 + budget
    # another budget scales every slice alike (e.g. a shorter retry, or a dry run on a busy machine)
    slices = {**{k: v * budget / BUDGET[mode] for k, v in SLICES[mode].items()}, **(slices or {})}
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu-check.log"
    log.write_text("", encoding="utf-8")
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="gpu-check-")) if work is None else work
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)),
                              "budget_s": round(deadline - t0), "steps": {}}
    load = WORKLOAD[mode]
    server = None
    try:
        site = _install_step(report, prepared, work, mode, deadline, slices["install"])
        env = child_env(mode, site)
        start = time.monotonic()
        try:
            server = StepServer(env, log, min(slices["start"], max(deadline - time.time() - 2, 1)))
            report["imports"] = {"seconds": round(time.monotonic() - start, 1), "failed": server.ready["failed"],
                                 "forked": server.fork}
        except CheckError as exc:
            report["imports"] = {"seconds": round(time.monotonic() - start, 1), "error": str(exc)}
        # the dry run's build writes the layout --prepare writes, with tiny architectures
        src = work / "src" if mode == "dry" else prepared
        models = work / "models"
        plan = {
            "probe": {"device": load["device"], "probe_mib": load["probe_mib"], "matmul_n": load["matmul_n"],
                      "dtype": load["dtype"]},
            "build": {"src": str(src), "dest": str(models), "device": load["device"], "dtype": load["dtype"],
                      "tiny": mode == "dry"},
            "rollout": {"model": str(models / "qwen2.5-1.5b-arch"), "batches": load["batches"],
                        "new_tokens": load["new_tokens"], "dtype": load["dtype"]},
            **{f"grpo-{gen}": {"model": str(models / "qwen2.5-0.5b-arch"), "work": str(work / f"grpo-{gen}"),
                               "generation": gen, "generations": load["grpo_generations"], "batch": load["grpo_batch"],
                               "tokens": load["grpo_tokens"]} for gen in ("r1", "trl")},
            "sft": {"model": str(models / "qwen2.5-0.5b-arch"), "work": str(work / "sft"), "batch": load["sft_batch"],
                    "length": load["sft_length"]},
            "eval": {"work": str(work / "eval")},
        }
        for name, spec in plan.items():
            left = deadline - time.time() - 2  # 2 s to write the table
            if server is None:
                report["steps"][name] = {"status": "failed", "seconds": 0, "results": [],
                                         "error": report["imports"]["error"]}
            elif left < 3:
                report["steps"][name] = {"status": "skipped", "seconds": 0, "results": [],
                                         "error": "no time left in the budget"}
            else:
                try:
                    report["steps"][name] = server.run(name, spec, timeout=min(slices[name], left), work=work)
                except CheckError as exc:  # the server died: the later steps cannot run either
                    report["steps"][name] = {"status": "failed", "seconds": 0, "results": [], "error": str(exc)}
                    server.close()
                    server = None
                    report["imports"]["error"] = str(exc)
            _write(out, report, rows_from(report), render_markdown)
    finally:
        if server is not None:
            server.close()
        if own_work and not os.environ.get("GPU_CHECK_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.time() - t0, 1)
    rows = rows_from(report)
    _write(out, report, rows, render_markdown)
    report["rows"] = rows
    return report


def _install_step(report: dict[str, Any], prepared: Path, work: Path, mode: str, deadline: float,
                  limit: float) -> Path | None:
    start = time.monotonic()
    site = work / "site"
    try:
        info = install(prepared, site, timeout=min(limit, max(deadline - time.time(), 1)))
        status = "warn" if info["unmet"] else "ok"
        report["steps"]["install"] = {"status": status, "seconds": round(time.monotonic() - start, 1),
                                      "results": [info], "error": None}
    except (CheckError, subprocess.TimeoutExpired) as exc:
        status = "timeout" if isinstance(exc, subprocess.TimeoutExpired) else "failed"
        report["steps"]["install"] = {"status": status, "seconds": round(time.monotonic() - start, 1),
                                      "results": [], "error": str(exc)}
    return site if site.is_dir() else None


def _write(out: Path, report: dict[str, Any], rows: list[dict[str, Any]], render: Any) -> None:
    data = {**report, "rows": rows}
    for name, text in (("gpu-check.json", json.dumps(data, indent=2) + "\n"), ("gpu-check.md", render(report, rows))):
        tmp = out / (name + ".part")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


# ---- command line ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="collect wheels, tokenizer and configs (needs PyPI)")
    p.add_argument("--dir", default=str(REPO / ".gpu-check"))
    r = sub.add_parser("run", help="run the check (GPU, or --dry-run on CPU)")
    r.add_argument("--dir", default=str(REPO / ".gpu-check"))
    r.add_argument("--out", default=None, help="folder for gpu-check.md/.json/.log (default $OUT, else DIR/out)")
    r.add_argument("--dry-run", action="store_true", help="the same steps on CPU with tiny models")
    r.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 480; dry 115)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "prepare":
            info = prepare(Path(args.dir))
            sizes = ", ".join(f"{w['dist']} {w['bytes'] / 2**20:.1f}" for w in info["wheels"])
            print(f"prepared {args.dir}: {info['mib']:.1f} MiB ({len(info['wheels'])} wheels, MiB: {sizes}; "
                  f"tokenizer + {len(info['models']['archs'])} configs)", file=sys.stderr)
            return 0
        out = Path(args.out or os.environ.get("OUT") or Path(args.dir) / ("dry-run" if args.dry_run else "out"))
        t0 = float(os.environ["GPU_CHECK_T0"]) if os.environ.get("GPU_CHECK_T0") else None
        mode = "dry" if args.dry_run else "gpu"
        if mode == "gpu":
            _require_gpu()
        report = check(Path(args.dir), out, mode=mode, budget=args.budget, t0=t0)
        sys.stdout.write((out / "gpu-check.md").read_text(encoding="utf-8"))
        failed = [r["check"] for r in report["rows"] if r["status"] not in ("ok", "warn")]
        print(f"gpu-check: {report['seconds']:.0f} s, table in {out}/gpu-check.md"
              + (f"; not ok: {', '.join(failed)}" if failed else ""), file=sys.stderr)
        return 1 if failed else 0
    except CheckError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        return 1


def _require_gpu() -> None:
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        raise CheckError("no NVIDIA GPU here (nvidia-smi -L failed): use --dry-run for the CPU check")


if __name__ == "__main__":
    sys.exit(main())
