"""Run every hostile program of test_hostile_sandbox.py against the code sandbox; print a JSON report.

    python hostile_runner.py INPUT.jsonl OUT.json [--opt-in]

It runs as the scoring worker would: a separate process (the test may start it under `setpriv`
without CAP_SYS_ADMIN, the host where namespaces cannot be made), holding what an attacker
wants: INPUT.jsonl on its command line (a record with the expected outputs), a secret in its
environment and in a file outside the sandbox, a victim process of its own user, a listening
TCP port. Each program runs twice: through the `code` reward (audit hook on), and with the
audit hook off (what a program that defeated it, by clearing its tables or with crafted
bytecode, would face: the kernel's layers alone). The report says, per run, the score, the
`why`, the isolation, and what the program changed outside (files made, victim alive, processes
left).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from r1cli import sandbox
from r1cli.rewards import get_factory
from r1cli.sandbox import Limits, SandboxUnavailable, grade

TIMEOUT = 1.0


def survivors(token: str) -> int:
    marker, found = f"R1_SANDBOX={token}".encode(), 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                found += name.isdigit() and marker in f.read()
        except OSError:
            continue
    return found


def main() -> None:
    source, out_path, opt_in = sys.argv[1], sys.argv[2], "--opt-in" in sys.argv
    with open(source, encoding="utf-8") as f:
        setup = json.loads(f.readline())
    attacks, ctx = setup["attacks"], setup["ctx"]
    os.environ["OPENAI_API_KEY"] = ctx["secret"]
    victim = subprocess.Popen(["sleep", "300"])
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    ctx.update(victim=victim.pid, runner=os.getpid(), port=server.getsockname()[1])
    token = os.urandom(8).hex()
    sandbox.secrets.token_hex = lambda n=16: token  # every sandbox process carries it: `survivors` finds them
    report: dict = {"results": {}}
    try:
        fn = get_factory("code")(timeout_s=TIMEOUT, memory_mb=256, allow_unconfined=opt_in)
    except SandboxUnavailable as exc:
        report["refused"] = f"{exc.message} | {exc.hint}"
        fn = None
    raw = Limits(timeout_s=TIMEOUT, cpu_s=TIMEOUT, memory_mb=256, audit=False, allow_unconfined=opt_in)
    for name, (program, expected) in attacks.items():
        code = program.format(**ctx)
        tests = [{"input": "", "output": expected.format(**ctx)}]
        for variant in ("reward", "no-audit"):
            start = time.monotonic()
            try:
                if variant == "reward":
                    if fn is None:
                        continue
                    value = fn(f"```python\n{code}\n```", tests=tests)
                    result = {"score": value, "why": getattr(value, "why", None),
                              "sandbox": getattr(value, "sandbox", None)}
                else:
                    g = grade(code, tests, limits=raw)
                    result = {"score": g.score, "why": g.note, "sandbox": g.isolation}
            except SandboxUnavailable as exc:
                result = {"refused": exc.message}
            time.sleep(0.05)  # a SIGKILLed process leaves /proc a moment later
            try:
                server.accept()[0].close()
                connected = True
            except BlockingIOError:
                connected = False
            result.update(seconds=round(time.monotonic() - start, 2), victim_alive=victim.poll() is None,
                          survivors=survivors(token), connected=connected,
                          made=[p for p in ctx["made"] if os.path.lexists(p)])
            for path in result["made"]:  # an attack that worked must not spoil the next ones
                os.unlink(path)
            report["results"][f"{name}/{variant}"] = result
            if victim.poll() is not None:
                victim = subprocess.Popen(["sleep", "300"])
                ctx["victim"] = victim.pid
    victim.kill()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
