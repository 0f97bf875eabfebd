r"""Run untrusted Python (programs written by a model) in a throw-away, limited process.

    >>> run_python("print(6 * 7)").stdout
    '42\n'
    >>> run_tests("print(int(input()) * 2)", [{"input": "2", "output": "4"}, {"input": "5", "output": "9"}])
    0.5

A call starts ``python -I -S -B -X utf8 CHILD.pyc JOB`` in a new session. The child sets up
the isolation, compiles the program once, then forks one process per test: a test costs a fork
(~2 ms), not an interpreter start (~25-40 ms). Each test process gets fresh globals and a
fresh ``__main__``, its own stdin/stdout/stderr (memfds), limits and process group. Expected
outputs never enter the sandbox: the parent compares.

Isolation, layer by layer (each layer holds where another one fails; docs/sandbox.md says what
each kind of host gets and what is promised there):

* **Linux namespaces** (as root; as any user where unprivileged user namespaces are allowed):
  new network namespace (no interface but a down loopback), new mount, IPC, UTS and PID
  namespaces, and a chroot into a fresh size-limited tmpfs holding only read-only bind mounts of
  the standard library and the system libraries, four /dev nodes, its own /proc, and a writable
  /tmp (cwd, HOME, TMPDIR). The supervisor is PID 1 of the namespace: when it dies the kernel
  kills everything inside. As root the sandbox runs under a fresh, unused uid; in a user
  namespace it drops all capabilities. PR_SET_PDEATHSIG takes the sandbox with its parent.
* **seccomp** (`r1cli.sandbox_seccomp`, libseccomp through pyseccomp), in every mode, on every
  test process: no ptrace or process_vm_*, no sockets, no mount, chroot or namespace calls, no
  memfd_create, no pidfd signals (and, without a PID namespace, no signals outside its own
  process group), no io_uring, bpf, perf or keyrings.
* **A cgroup per sandbox** (`r1cli.sandbox_cgroup`, v2 or v1, where one can be made): every
  test process joins it, so `memory_mb` and `processes` bound all its processes together,
  memfds and tmpfs included. Where none can be made, seccomp forbids new processes (threads
  stay: they share one address space under RLIMIT_AS).
* **Process limits**, always, per test: wall-clock timeout (the supervisor SIGKILLs the test's
  process group), RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE (largest file, captured output
  included), RLIMIT_NOFILE, no core dumps, RLIMIT_NPROC, not dumpable. Output is read back with
  a cap (`Limits.output_bytes`). After every call the parent kills what is left (process group,
  cgroup, PID namespace) and removes the temporary directory.
* **Without namespaces** (a container without CAP_SYS_ADMIN, user namespaces turned off, or
  `Limits(namespaces=False)`) the sandbox **refuses** (`SandboxUnavailable`, naming the missing
  mechanism) unless `Limits.allow_unconfined`. Opted in: a fresh uid as root (or, where the
  interpreter is readable by root only, uid 0 with every capability and the bounding set
  dropped), seccomp, rlimits, the cgroup, and Landlock where the kernel has it (read-only
  access to the standard library and system libraries, its own dir writable, no TCP, and from
  ABI 6 no signals or abstract sockets outside). The isolation word says which ran:
  ``unconfined-optin(uid,seccomp,rlimits,cgroup,landlock-v7)``. Where the program would keep
  r1's uid and the kernel has no Landlock, it refuses even then.
* **Audit hook** (`Limits.audit`, in-process; defence in depth, not a boundary: a program can
  clear its tables or corrupt the interpreter with crafted bytecode) refuses sockets,
  fork/exec, ctypes, paths outside the sandbox.

Only the standard library is importable (``-S``: no site-packages, so neither r1cli nor numpy).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import marshal
import os
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from r1cli import sandbox_cgroup
from r1cli._sandbox_child import _kill_group
from r1cli.errors import R1Error
from r1cli.sandbox_seccomp import SeccompUnavailable, program_filter

# Backstop for what no per-test timer covers (interpreter start, namespace set-up, compiling):
# a generous 10 s, so that a loaded machine never turns a slow start into a zero reward.
_STARTUP_S = 10.0
_ERR_CAP = 1 << 16
_ISOLATED = ("namespaces", "user-namespaces")  # prefixes of the isolation words that mean a PID namespace
# What an unconfined run may cost a user who did not ask for it, and how to get the real sandbox.
REFUSAL_HINT = ("enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                "user.max_user_namespaces=15000, kernel.apparmor_restrict_unprivileged_userns=0), or give the "
                "container CAP_SYS_ADMIN (docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined …); "
                "to run the programs anyway under the weaker sandbox (own uid, seccomp, rlimits, Landlock), opt in "
                "with --reward-arg code.allow_unconfined=true or R1_ALLOW_UNCONFINED_CODE=1")


class SandboxUnavailable(R1Error):
    """The namespace sandbox cannot be built here and running unconfined was not allowed."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Limits for one program run (`run_python`) or for each test (`run_tests`)."""

    timeout_s: float = 5.0  # wall clock
    cpu_s: float = 5.0  # RLIMIT_CPU, rounded up to whole seconds
    memory_mb: int = 512  # RLIMIT_AS (address space: the interpreter itself takes ~30 MB)
    output_bytes: int = 65536  # stdout and stderr kept, each (run_tests keeps at least 2x the expected output)
    file_mb: int = 16  # RLIMIT_FSIZE: largest file the program may write, its stdout included
    processes: int = 32  # RLIMIT_NPROC (processes and threads), where the kernel enforces it
    namespaces: bool = True  # use Linux namespaces where permitted; False forces the fallback
    allow_unconfined: bool = False  # without namespaces, run under the fallback rather than refuse
    audit: bool = True  # the in-process audit hook; False only to test the process-level layers

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb", "output_bytes", "file_mb", "processes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64 (the interpreter alone needs ~30 MB), got {self.memory_mb}")


@dataclass(frozen=True)
class Result:
    """How a run ended.

    status: ok (exit 0) | error (non-zero exit, uncaught exception, syntax error) | timeout
    (wall clock or CPU limit) | killed (a signal: SIGSEGV, or SIGKILL at the hard CPU limit) |
    output_limit (wrote more than `file_mb`) | memory_limit (the sandbox's cgroup ran out of memory
    and the kernel killed a process) | skipped (not run: `binary` stopped earlier) | sandbox_error
    (the sandbox itself could not start; `stderr` says why).
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False  # stdout or stderr was longer than its cap
    isolation: str = ""  # e.g. namespaces+seccomp+cgroup, unconfined-optin(uid,seccomp,…) ("": did not start)


def run_python(code: str, *, stdin: str = "", limits: Limits = Limits()) -> Result:
    """Run `code` as a program reading `stdin`: how it ended and its (capped) output.

    >>> r = run_python("import sys; print(sys.stdin.read().upper()); sys.exit(3)", stdin="hi")
    >>> r.status, r.returncode, r.stdout
    ('error', 3, 'HI\\n')
    """
    return _execute(code, [stdin.encode("utf-8", "surrogateescape")], limits, [limits.output_bytes])[0][0]


def normalize_tests(tests: Any) -> list[tuple[str, str]] | None:
    """(input, expected output) pairs of stdin/stdout tests; None if there are none or they are malformed.

    Accepts a list of ``{"input", "output"}``, a dict ``{"inputs": [...], "outputs": [...]}``
    (APPS/TACO), or either one as a JSON string.

    >>> normalize_tests([{"input": "1", "output": "2"}]), normalize_tests('{"inputs": ["1"], "outputs": ["2"]}')
    ([('1', '2')], [('1', '2')])
    >>> normalize_tests([]) is None, normalize_tests([{"input": 1}]) is None
    (True, True)
    """
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            return None
    if isinstance(tests, dict) and isinstance(tests.get("inputs"), list) and isinstance(tests.get("outputs"), list):
        if len(tests["inputs"]) != len(tests["outputs"]) or "fn_name" in tests:  # call-based tests: not stdin/stdout
            return None
        tests = [{"input": i, "output": o} for i, o in zip(tests["inputs"], tests["outputs"])]
    if not isinstance(tests, list) or not tests:
        return None
    if not all(isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str) for t in tests):
        return None
    return [(t["input"], t["output"]) for t in tests]


def same_output(actual: str, expected: str) -> bool:
    """Whether two outputs match, ignoring blank space around them and at the end of each line.

    >>> same_output("1 2 \\n3\\n\\n", "1 2\\n3"), same_output("1 2", "1  2")
    (True, False)
    """
    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip().splitlines()]

    return lines(actual) == lines(expected)


@dataclass(frozen=True)
class Grade:
    """The verdict on a program: the score, the isolation it ran under, and why it lost points to a limit.

    `note` names the first test that hit a limit (time, memory, output, processes), or says the
    program did not compile; None when every failing test simply printed a wrong answer.
    """

    score: float | None
    isolation: str | None
    note: str | None = None


def run_tests(code: str, tests: Any, *, limits: Limits = Limits(), binary: bool = False) -> float | None:
    """Fraction of stdin/stdout `tests` that `code` passes (1.0/0.0 if `binary`); None if unscorable.

    All tests run in one sandbox (one interpreter start, one fork per test), each under
    `limits`. A test passes when the program exits 0 and its stdout matches (`same_output`).
    None: no tests, malformed tests (`normalize_tests`), or a sandbox that could not start.
    With `binary`, the run stops at the first failing test. `grade` says more.

    >>> run_tests("print(sum(map(int, input().split())))", [{"input": "1 2", "output": "3"}])
    1.0
    """
    return grade(code, tests, limits=limits, binary=binary).score


def grade(code: str, tests: Any, *, limits: Limits = Limits(), binary: bool = False) -> Grade:
    """`run_tests` with the isolation that ran the program and the limit it hit, if any.

    >>> g = grade("while True: pass", [{"input": "", "output": "1"}], limits=Limits(timeout_s=0.5, cpu_s=0.5))
    >>> g.score, g.note
    (0.0, 'test 1: time limit (0.5 s)')
    """
    pairs = normalize_tests(tests)
    if pairs is None:
        return Grade(None, None)
    caps = [max(limits.output_bytes, 2 * len(out.encode()) + 1024) for _, out in pairs]

    def passed(i: int, result: Result) -> bool:
        return result.status == "ok" and not result.truncated and same_output(result.stdout, pairs[i][1])

    results, mode = _execute(code, [inp.encode("utf-8", "surrogateescape") for inp, _ in pairs], limits, caps,
                             stop=(lambda i, r: not passed(i, r)) if binary else None)
    if mode is None:
        return Grade(None, None, f"sandbox error: {results[0].stderr.strip()[-300:]}")
    score = sum(passed(i, r) for i, r in enumerate(results)) / len(pairs)
    notes = [(i, n) for i, r in enumerate(results) if (n := limit_note(r, limits)) is not None]
    note = None
    if notes:
        i, note = notes[0]
        note = f"test {i + 1}: {note}"
    return Grade(float(score == 1.0) if binary else score, mode, note)


def limit_note(result: Result, limits: Limits) -> str | None:
    """The limit a run hit, in words; None when it ended on its own (right or wrong).

    >>> limit_note(Result("timeout", None, "", "", 1.0), Limits(timeout_s=1.0))
    'time limit (1 s)'
    """
    last = result.stderr.strip().rsplit("\n", 1)[-1]
    if result.status == "timeout":
        return f"time limit ({limits.timeout_s:g} s)"
    if result.status == "memory_limit" or (result.status == "error" and last.startswith("MemoryError")):
        return f"memory limit ({limits.memory_mb} MB)"
    if result.status == "output_limit" or result.truncated:
        return f"output limit ({limits.file_mb} MB written, {limits.output_bytes:,} bytes kept)"
    if result.status == "killed":
        return f"killed by signal {-(result.returncode or 0) or 9}"
    if result.status == "error" and "Resource temporarily unavailable" in last:
        return f"process limit ({limits.processes})"
    return None


@functools.lru_cache(maxsize=1)
def _child_pyc() -> bytes:
    """The child side of this module as a .pyc image: the sandbox starts without compiling (~10 ms)."""
    from r1cli import _sandbox_child

    with open(_sandbox_child.__file__, encoding="utf-8") as f:
        source = f.read() + "\n_child_main(sys.argv[1])\n"
    code = compile(source, "<r1-sandbox>", "exec", dont_inherit=True)
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)


def budget_s(limits: Limits, tests: int) -> float:
    """The most wall seconds a sandbox of `tests` tests may take before its parent gives up on it.

    >>> budget_s(Limits(timeout_s=2.0), 3)
    17.5
    """
    return _STARTUP_S + tests * (limits.timeout_s + 0.5)


def _filters(fork: bool, own_signals_only: bool) -> tuple[bytes, bytes]:
    """The programs' seccomp filters with namespaces (a PID namespace bounds signals) and without."""
    try:
        return (program_filter(fork=fork, own_signals_only=False),
                program_filter(fork=fork, own_signals_only=own_signals_only))
    except SeccompUnavailable as exc:
        raise SandboxUnavailable(f"the code sandbox cannot build its seccomp filter: {exc}",
                                 hint="pip install pyseccomp (it needs libseccomp.so.2: apt install libseccomp2)") from exc


def _execute(code: str, inputs: Sequence[bytes], limits: Limits, caps: Sequence[int],
             stop: Callable[[int, Result], bool] | None = None) -> tuple[list[Result], str | None]:
    """Run `code` once per input in one sandbox: the results, and the isolation (None: it did not start).

    SandboxUnavailable when the namespaces cannot be made and `limits.allow_unconfined` is off.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    uid = 2_000_000_000 + secrets.randbelow(100_000_000) if os.geteuid() == 0 else None
    group = sandbox_cgroup.create(int(limits.memory_mb), int(limits.processes) + 1, os.getpid())
    try:
        seccomp_ns, seccomp_fallback = _filters(group is not None, True)
    except SandboxUnavailable:
        if group is not None:
            sandbox_cgroup.destroy(group)
        raise
    base, token = tempfile.mkdtemp(prefix=_folder_prefix(os.getpid())), secrets.token_hex(16)
    job = {"code": code, "inputs": list(inputs), "caps": list(caps), "err_cap": min(limits.output_bytes, _ERR_CAP),
           "timeout_s": float(limits.timeout_s), "cpu_s": float(limits.cpu_s), "memory_mb": int(limits.memory_mb),
           "file_mb": int(limits.file_mb), "processes": int(limits.processes), "namespaces": bool(limits.namespaces),
           "allow_unconfined": bool(limits.allow_unconfined), "audit": bool(limits.audit), "uid": uid, "base": base,
           "seccomp_ns": seccomp_ns, "seccomp_fallback": seccomp_fallback,
           "cgroup_procs": list(group.procs) if group else [], "cgroup_events": group.events if group else None}
    job_path, child_path = os.path.join(base, "job"), os.path.join(base, "child.pyc")
    for path, data in ((job_path, marshal.dumps(job)), (child_path, _child_pyc())):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": base, "TMPDIR": base, "R1_SANDBOX": token}
    results: list[Result | None] = [None] * len(inputs)
    state: dict[str, Any] = {"mode": None, "compile": None, "stopped": False, "timed_out": False, "refused": None}
    start, err = time.monotonic(), bytearray()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-X", "utf8", child_path, job_path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=base, env=env, start_new_session=True)
    except OSError as exc:
        _rmtree(base)
        if group is not None:
            sandbox_cgroup.destroy(group)
        return [Result("sandbox_error", None, "", f"cannot start the sandbox: {exc}", 0.0)] * len(inputs), None
    try:
        _collect(proc, results, state, err, start + budget_s(limits, len(inputs)),
                 sum(caps) + len(caps) * (_ERR_CAP + 256) + 65536, stop)
    finally:
        _kill_group(proc.pid)  # before wait(): the unreaped leader keeps the group id from being reused
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        _await_group(proc.pid)  # a PID namespace's init exits only once the namespace is empty
        if group is not None:
            sandbox_cgroup.destroy(group)
        if not (state["mode"] or "").startswith(_ISOLATED):
            _kill_marked(token, uid)
        _rmtree(base)
    if state["refused"] is not None:
        raise SandboxUnavailable(f"the code sandbox refuses to run untrusted programs here: {state['refused']}",
                                 hint=REFUSAL_HINT)
    wall, mode = time.monotonic() - start, state["mode"]
    for i, result in enumerate(results):
        if result is None and state["compile"] is not None:
            results[i] = Result("error", 1, "", state["compile"], 0.0, isolation=mode)
        elif result is None and mode is None:
            message = err.decode("utf-8", "replace") or "the sandbox exited without a result"
            results[i] = Result("sandbox_error", None, "", message, wall)
        elif result is None:
            status = "skipped" if state["stopped"] else "timeout" if state["timed_out"] else "killed"
            results[i] = Result(status, None, "", "", wall, isolation=mode)
    return results, mode  # type: ignore[return-value]


def _collect(proc: subprocess.Popen, results: list, state: dict, err: bytearray, deadline: float, limit: int,
             stop: Callable[[int, Result], bool] | None) -> None:
    """Read the supervisor's frames (and a capped stderr) until it exits, the deadline passes, or `stop`."""
    buf = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        while sel.get_map():
            if (left := deadline - time.monotonic()) <= 0:
                state["timed_out"] = True
                return
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data == "err":
                    err += chunk[: max(0, _ERR_CAP - len(err))]
                else:
                    buf += chunk
                    if len(buf) > limit:
                        return  # more than the caps allow: not our supervisor talking
                    try:
                        finished = _frames(buf, results, state)
                    except (ValueError, IndexError):
                        return  # a garbled frame: the remaining tests count as failed
                    if stop is not None and any(stop(i, results[i]) for i in finished):
                        state["stopped"] = True
                        return


def _frames(buf: bytearray, results: list, state: dict) -> list[int]:
    """Consume the complete frames at the front of `buf`; the indices of the tests that finished."""
    done = []
    while (nl := buf.find(b"\n")) >= 0:
        head = bytes(buf[:nl]).decode("ascii", "replace").split(" ")
        if head[0] in ("M", "R"):  # the isolation that runs the tests, or why the sandbox refused to run them
            state["mode" if head[0] == "M" else "refused"] = " ".join(head[1:]) if head[0] == "R" else head[1]
            del buf[: nl + 1]
            continue
        sizes = [int(head[1])] if head[0] == "C" else [int(head[5]), int(head[7])]
        end = nl + 1 + sum(sizes)
        if len(buf) < end:
            break
        payload = bytes(buf[nl + 1 : end])
        del buf[:end]
        if head[0] == "C":
            state["compile"] = payload.decode("utf-8", "replace")
            continue
        i, status, rc = int(head[1]), head[2], None if head[3] == "None" else int(head[3])
        out, errb = payload[: sizes[0]], payload[sizes[0] :]
        results[i] = Result(status, rc, out.decode("utf-8", "replace"), errb.decode("utf-8", "replace"),
                            float(head[4]), truncated=int(head[6]) > sizes[0] or int(head[8]) > sizes[1],
                            isolation=state["mode"])
        done.append(i)
    return done


def _await_group(pgid: int, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except OSError:
            return
        time.sleep(0.002)


def _kill_marked(token: str, uid: int | None) -> None:
    """Without a PID namespace: kill what left the process group (setsid), found by uid or environment marker."""
    marker, me = f"R1_SANDBOX={token}".encode(), str(os.getpid())
    for _ in range(50):
        found = []
        for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
            try:
                if not name.isdigit() or name == me:
                    continue
                if uid is not None and os.stat("/proc/" + name).st_uid == uid:
                    found.append(int(name))
                    continue
                with open(f"/proc/{name}/environ", "rb") as f:
                    if marker in f.read():
                        found.append(int(name))
            except OSError:
                continue
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.005)


def _folder_prefix(pid: int) -> str:
    """Sandbox folders carry the pid of the process that made them: `remove_folders_of` finds them."""
    return f"r1-sandbox-{pid}-"


def remove_folders_of(pid: int) -> int:
    """Remove the sandbox folders that process `pid` (now ended) left in the temp dir; how many.

    A process killed during `run_python` (a scoring worker past its timeout) never reaches the
    removal at the end of the run; its folder would stay, with what the program wrote (up to
    `file_mb` per file without namespaces).
    """
    sandbox_cgroup.remove_of(pid)  # and its cgroup, with whatever still runs in it
    base, prefix, removed = tempfile.gettempdir(), _folder_prefix(pid), 0
    try:
        names = [n for n in os.listdir(base) if n.startswith(prefix)]
    except OSError:
        return 0
    for name in names:
        _rmtree(os.path.join(base, name))
        removed += 1
    return removed


def _rmtree(path: str) -> None:
    try:
        shutil.rmtree(path)
    except OSError:  # a program may have made its own dirs read-only: make them ours again
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o700)
                except OSError:
                    pass
        shutil.rmtree(path, ignore_errors=True)
