"""The table of scripts/gpu_check.py: the hardware bounds, one row per check, and its markdown.

Every row of `gpu_check.ROWS` is present whatever happened: a step that failed, ran out of time or
was skipped gives its rows that status, so a short run still shows what it did not reach.
"""

from __future__ import annotations

from typing import Any

ROLLOUT_BATCHES = (1, 8, 64, 256)
BATCH1_SHARE = 0.5  # target: batch-1 decode at ≥ 50% of the bandwidth bound
BATCH256_GAIN = 10.0  # target: a batch of 256 at ≥ 10× the batch-1 tokens/s


def decode_bounds(*, batch: int, weight_bytes: float, kv_bytes_per_token: float, context: float,
                  bandwidth: float | None, flops: float | None, params: float) -> dict[str, float | None]:
    """Tokens/s ceilings of decoding `batch` sequences whose cache holds `context` tokens on average.

    Each decode step reads every weight once and each sequence's KV cache, and yields `batch` tokens:
    bandwidth bound = batch × bandwidth / (weights + batch × context × KV bytes per token).
    Each token costs 2 × params FLOPs through the weights: compute bound = FLOP/s / (2 × params).

    >>> b = decode_bounds(batch=1, weight_bytes=2e9, kv_bytes_per_token=0, context=0, bandwidth=4e12,
    ...                   flops=8e14, params=1e9)
    >>> b["bandwidth_tok_s"], b["compute_tok_s"]
    (2000.0, 400000.0)
    """
    step_bytes = weight_bytes + batch * context * kv_bytes_per_token
    return {"bandwidth_tok_s": batch * bandwidth / step_bytes if bandwidth else None,
            "compute_tok_s": flops / (2 * params) if flops else None}


def _results(report: dict[str, Any], step: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in report["steps"].get(step, {}).get("results", []) if r.get("kind") == kind]


def _status(report: dict[str, Any], step: str) -> tuple[str, float, str | None]:
    entry = report["steps"].get(step)
    if entry is None:
        return "not run", 0.0, "an earlier step stopped the run"
    return entry["status"], entry["seconds"], entry.get("error")


def _scaled(x: float | None, unit: str) -> str:
    """3 significant digits with an SI prefix: 4.31 TB/s, 812 TFLOP/s, 1.39 G params.

    >>> _scaled(4.31e12, "B/s"), _scaled(3.2e6, ""), _scaled(None, "B/s")
    ('4.31 TB/s', '3.2 M', '-')
    """
    if x is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}{unit}"


def rows_from(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per check: check, status, seconds, measured, bound, target, verdict (met / missed / n/a)."""
    gpu = report["mode"] == "gpu"
    rows: list[dict[str, Any]] = []

    def row(check: str, step: str, measured: str = "-", bound: str = "-", target: str = "-", verdict: str = "-",
            ok: bool = True) -> None:
        status, seconds, error = _status(report, step)
        if status == "ok" and not ok:
            status = "missing"
        rows.append({"check": check, "status": status, "seconds": seconds, "measured": measured, "bound": bound,
                     "target": target, "verdict": verdict, "note": error or ""})

    info = (report["steps"].get("install", {}).get("results") or [{}])[0]
    installed = info.get("installed")
    row("install", "install",
        "-" if installed is None else f"{len(installed)} wheels installed; image had {len(info.get('present', []))}",
        target="every import r1 needs", verdict="; ".join(info.get("unmet", [])) or "-")
    env = (_results(report, "probe", "env") or [{}])[0]
    bw = (_results(report, "probe", "bandwidth") or [{}])[0].get("bytes_per_s")
    mm = (_results(report, "probe", "matmul") or [{}])[0].get("flops_per_s")
    device = env.get("device", "-")
    matmul = (_results(report, "probe", "matmul") or [{}])[0]
    row("probe: bandwidth", "probe", _scaled(bw, "B/s"), f"device: {device}", ok=bw is not None)
    dtype = matmul.get("dtype", "bfloat16")
    row("probe: bf16 matmul", "probe", _scaled(mm, "FLOP/s") + ("" if dtype == "bfloat16" else f" ({dtype})"),
        f"torch {env.get('versions', {}).get('torch', '-')}", ok=mm is not None)
    models = _results(report, "build", "model")
    row("build models", "build", "; ".join(f"{m['name']} {_scaled(m['params'], '')} params" for m in models) or "-",
        ok=len(models) == 2)
    model = (_results(report, "rollout", "model") or [{}])[0]
    batches = {b["batch"]: b for b in _results(report, "rollout", "batch")}
    batch1 = batches.get(1, {}).get("tok_s")
    for size in ROLLOUT_BATCHES:
        b = batches.get(size)
        measured = bound = target = verdict = "-"
        if b and model:
            bounds = decode_bounds(batch=size, weight_bytes=model["weight_bytes"],
                                   kv_bytes_per_token=model["kv_bytes_per_token"],
                                   context=b["prompt_tokens"] + (b["new_tokens"] + 1) / 2, bandwidth=bw, flops=mm,
                                   params=model["params"])
            bw_share = b["tok_s"] / bounds["bandwidth_tok_s"] if bounds["bandwidth_tok_s"] else None
            c_share = b["tok_s"] / bounds["compute_tok_s"] if bounds["compute_tok_s"] else None
            measured = f"{b['tok_s']:,.1f} tok/s ({b['prompts']}×{b['samples']}, {_num(b['peak_gib'], ' GiB', 2)})"
            bound = (f"bw {_num(bounds['bandwidth_tok_s'], '', 0)} ({_pct(bw_share)}); "
                     f"compute {_num(bounds['compute_tok_s'], '', 0)} ({_pct(c_share)})")
            if size == 1:
                target = f"≥ {BATCH1_SHARE:.0%} of bw bound"
                verdict = _verdict(gpu, bw_share is not None and bw_share >= BATCH1_SHARE)
            elif size == 256 and batch1:
                gain = b["tok_s"] / batch1
                target = f"≥ {BATCH256_GAIN:.0f}× batch 1"
                verdict = f"{gain:.1f}× " + _verdict(gpu, gain >= BATCH256_GAIN)
        row(f"rollout batch {size}", "rollout", measured, bound, target, verdict, ok=b is not None)
    for step, kind, check in (("grpo-r1", "grpo", "grpo 3 steps (r1 generation)"),
                              ("grpo-trl", "grpo", "grpo 3 steps (trl generation)"), ("sft", "sft", "sft 3 steps")):
        r = (_results(report, step, kind) or [None])[0]
        measured = "-"
        verdict = "-"
        if r and r.get("available") is False:
            row(check, step, "not in this r1 (r1 grpo has no --generation)", verdict="n/a")
            continue
        if r:
            rate = f", {r['tok_s']:,.0f} tok/s" if r.get("tok_s") else ""
            measured = (f"{_num(r['s_per_step'], ' s/step', 2)} (1st {_num(r['first_step_s'], ' s', 1)}){rate}, "
                        f"peak {r['memory']} {_num(r['peak_gib'], ' GiB', 2)}, {r['dtype']}")
            verdict = _verdict(gpu, r["dtype"] == "bf16" and r["steps"] >= 3)
        row(check, step, measured, target="3 steps in bf16, no OOM", verdict=verdict, ok=r is not None)
    e = (_results(report, "eval", "eval") or [None])[0]
    row("eval --from", "eval", "-" if not e else f"pass@1 {e['pass@1']:.3f}",
        target="-" if not e else f"pass@1 = {e['expected']:.3f}",
        verdict="-" if not e else ("met" if abs(e["pass@1"] - e["expected"]) < 1e-9 else "missed"), ok=e is not None)
    return rows


def _verdict(gpu: bool, met: bool) -> str:
    if not gpu:
        return "n/a on CPU"
    return "met" if met else "missed"


def _imports(info: dict[str, Any] | None) -> str:
    if not info:
        return ""
    text = f"; imports (once, shared by the steps) {info['seconds']:.0f} s"
    if info.get("forked") is False:
        text += " (but CUDA was touched before forking: each step started afresh, importing again)"
    failed = info.get("failed") or {}
    if info.get("error"):
        text += f", failed: {info['error']}"
    elif failed:
        text += ", failed: " + "; ".join(f"{k} ({v})" for k, v in failed.items())
    return text


def render_markdown(report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    env = (_results(report, "probe", "env") or [{}])[0]
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    mode = "GPU" if report["mode"] == "gpu" else "dry run (CPU, tiny models)"
    total = report.get("seconds")
    lines = [f"## gpu-check — {mode}, {report['started']}", "",
             f"Device: {env.get('device', '-')}. {versions or ''}".rstrip(),
             f"Budget {report['budget_s']} s" + (f", took {total:.0f} s" if total is not None else " (running)")
             + _imports(report.get("imports")) + ".", "",
             "| check | status | s | measured | bound | target | verdict | note |",
             "|---|---|---:|---|---|---|---|---|"]
    for r in rows:
        cells = [r["check"], r["status"], f"{r['seconds']:.1f}", r["measured"], r["bound"], r["target"], r["verdict"],
                 r["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"
