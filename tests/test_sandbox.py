"""The sandbox and the `code` reward: correct programs score, hostile programs are contained.

Every hostile program's test expects the output it would print if its attack worked, so a
score of 0.0 means the attack failed; after each run no sandbox process may be left.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

import r1cli.rewards.code  # noqa: F401 - registers the `code` reward
from r1cli import sandbox
from r1cli.rewards import get_factory
from r1cli.rewards.code import extract_code
from r1cli.sandbox import Limits, normalize_tests, run_python, run_tests

FAST = Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=256)
MODES = {
    "auto": FAST,  # namespaces where the kernel permits them
    "process": Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=256, namespaces=False, allow_unconfined=True),
}
ISOLATION = run_python("pass", limits=FAST).isolation
needs_namespaces = pytest.mark.skipif(not ISOLATION.startswith(("namespaces", "user-namespaces")),
                                      reason=f"no Linux namespaces here (isolation: {ISOLATION})")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """A marker known to this test: every sandbox process carries it in its environment."""
    value = os.urandom(8).hex()
    monkeypatch.setattr(sandbox.secrets, "token_hex", lambda n=16: value)
    return value


def survivors(token: str) -> list[int]:
    """Processes still alive (zombies included) that belong to a sandbox run with `token`."""
    marker, found = f"R1_SANDBOX={token}".encode(), []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if name.isdigit() and marker in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def score(program: str, expected: str, limits: Limits) -> float | None:
    return run_tests(program, [{"input": "", "output": expected}], limits=limits)


# ---- correct programs ------------------------------------------------------------------

ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
TESTS = [{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}]


@pytest.mark.parametrize(
    ("completion", "tests", "expected"),
    [
        (ADD, TESTS, 1.0),
        ("<think>maybe</think>\n```python\nprint(3)\n```", TESTS, 0.5),
        ("```python\nprint(int(input().split()[0]) + 2\n```", TESTS, 0.0),  # syntax error
        ("```python\nraise SystemExit(1)\n```", TESTS, 0.0),
        ("no code block at all", TESTS, 0.0),
        ("```python\n\n```", TESTS, 0.0),  # empty block
        (ADD, json.dumps(TESTS), 1.0),  # tests stored as a JSON string
        (ADD, {"inputs": ["1 2", "5 5"], "outputs": ["3\n", "10  \n\n"]}, 1.0),  # APPS shape, trailing blanks
        (ADD, [], None),
        (ADD, [{"input": "1 2"}], None),
        (ADD, "not json", None),
        (ADD, None, None),
        ("no code block", None, None),
    ],
)
def test_code_reward(completion: str, tests: object, expected: float | None) -> None:
    assert get_factory("code")(timeout_s=2.0)(completion, tests=tests) == expected


def test_binary_is_all_or_nothing() -> None:
    fn = get_factory("code")(timeout_s=2.0, binary=True)
    assert fn("```python\nprint(3)\n```", tests=TESTS) == 0.0
    assert fn(ADD, tests=TESTS) == 1.0


@pytest.mark.parametrize(
    "program",
    [
        "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))",
        "print(sum(map(int, open(0).read().split())))",
        "import sys\ninput = sys.stdin.readline\nprint(sum(map(int, input().split())))\nexit()",
        # the usual deep-recursion idiom: a thread with a big stack, the main thread not joining it
        "import sys, threading\nsys.setrecursionlimit(10**6)\nthreading.stack_size(1 << 26)\n"
        "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\n"
        "def main():\n    a, b = map(int, input().split())\n    print(a + b + f(20000) - 20000)\n"
        "threading.Thread(target=main).start()",
        "import atexit, sys\natexit.register(lambda: sys.stdout.write(str(sum(map(int, input().split())))))",
        "from collections import namedtuple\nimport pickle\nP = namedtuple('P', 'a b')\n"
        "p = pickle.loads(pickle.dumps(P(*map(int, input().split()))))\nprint(p.a + p.b)",
    ],
    ids=["stdin-buffer", "open-0", "exit", "thread-recursion", "atexit", "pickle-main"],
)
def test_common_stdin_idioms(program: str) -> None:
    assert run_tests(program, TESTS, limits=Limits(timeout_s=3.0)) == 1.0


def test_run_python_reports_status_output_and_exit_code() -> None:
    r = run_python("import sys\nprint(input()[::-1])\nprint('oops', file=sys.stderr)\nsys.exit(3)", stdin="abc")
    assert (r.status, r.returncode, r.stdout, r.stderr) == ("error", 3, "cba\n", "oops\n")
    r = run_python("1 / 0")
    assert r.status == "error" and r.stderr.splitlines()[-1] == "ZeroDivisionError: division by zero"
    assert "sandbox" not in r.stderr  # the traceback starts at the program's own frame
    r = run_python("print(")
    assert r.status == "error" and "SyntaxError" in r.stderr


def test_a_sandbox_that_cannot_start_is_unscorable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.sys, "executable", "/nonexistent/python")
    assert run_python("print(1)").status == "sandbox_error"
    assert run_tests("print(1)", [{"input": "", "output": "1"}]) is None


def test_normalize_tests_rejects_call_based_tests() -> None:
    assert normalize_tests({"fn_name": "f", "inputs": [[1]], "outputs": [2]}) is None


def test_extract_code_prefers_the_last_python_block_after_thinking() -> None:
    text = "```python\nA\n```\n</think>\n```py\nB\n```\n```\nC\n```\n```text\nD\n```"
    assert extract_code(text) == "B\n"


def test_limits_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)


# ---- hostile programs ------------------------------------------------------------------

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass"
DETACH = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(100)\n"
          "    os._exit(0)\nprint('detached')")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (FORK_BOMB, "survived"),
        ("while True:\n    pass", "done"),
        ("x = []\nwhile True:\n    x.append(' ' * 10**6)", "done"),
        ("import os\nprint(os.system('echo pwned'))", "pwned\n0"),
        ("import subprocess\nprint(subprocess.run(['echo', 'pwned'], capture_output=True).stdout.decode())", "pwned"),
        (DETACH, "detached"),
    ],
    ids=["fork-bomb", "infinite-loop", "memory-bomb", "os-system", "subprocess", "setsid-detach"],
)
def test_hostile_program_is_contained(mode: str, program: str, expected: str, token: str) -> None:
    start = time.monotonic()
    assert score(program, expected, MODES[mode]) == 0.0
    assert time.monotonic() - start < 10
    assert survivors(token) == []


@pytest.mark.parametrize("mode", MODES)
def test_cannot_write_outside_the_sandbox(mode: str, tmp_path, token: str) -> None:
    target = tmp_path / "pwned.txt"
    assert score(f"open({str(target)!r}, 'w').write('x')\nprint('written')", "written", MODES[mode]) == 0.0
    assert score(f"import os\nos.system('touch {target}')\nprint('written')", "written", MODES[mode]) == 0.0
    assert not target.exists()
    assert survivors(token) == []


@pytest.mark.parametrize("mode", MODES)
def test_cannot_read_the_users_ssh_key(mode: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "FAKE-PRIVATE-KEY-" + os.urandom(8).hex()
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    program = (f"import os\nfor p in ['~/.ssh/id_rsa', {str(tmp_path / '.ssh' / 'id_rsa')!r}]:\n"
               "    try:\n        print(open(os.path.expanduser(p)).read())\n"
               "    except Exception as e:\n        print(type(e).__name__)")
    assert score(program, key, MODES[mode]) == 0.0
    r = run_python(program, limits=MODES[mode])
    assert r.status == "ok" and key not in r.stdout + r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_cannot_connect_to_a_local_socket(mode: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\nprint('sent')"
        assert score(program, "sent", MODES[mode]) == 0.0
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.parametrize("mode", MODES)
def test_huge_output_is_capped(mode: str, token: str) -> None:
    r = run_python("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)",
                   limits=Limits(timeout_s=5.0, namespaces=MODES[mode].namespaces, allow_unconfined=True))
    assert r.truncated and len(r.stdout) == 65536 and r.status == "output_limit"
    assert survivors(token) == []


# ---- the process-level layers alone (audit hook off): Linux namespaces -----------------

RAW = Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=256, processes=16, audit=False, allow_unconfined=True)


@pytest.mark.parametrize(
    ("program", "namespaces"),
    [
        pytest.param(FORK_BOMB, True, marks=needs_namespaces, id="fork-bomb"),
        pytest.param("import os, time\nos.fork()\ntime.sleep(100)", True, marks=needs_namespaces, id="fork-sleep"),
        pytest.param(DETACH, True, marks=needs_namespaces, id="setsid-detach"),
        # without namespaces the parent finds the escaped process by the marker in its environment
        pytest.param(DETACH, False, id="setsid-detach-process"),
    ],
)
def test_forks_are_contained_without_the_audit_hook(program: str, namespaces: bool, token: str) -> None:
    start = time.monotonic()
    run_python(program, limits=Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=256, processes=16, audit=False,
                                      namespaces=namespaces, allow_unconfined=True))
    assert time.monotonic() - start < 10
    assert survivors(token) == []


@needs_namespaces
def test_namespaces_hide_files_and_network_without_the_audit_hook(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    program = (f"import os, socket\nprint(os.path.exists({str(secret)!r}), os.path.exists({os.getcwd()!r}))\n"
               f"open({str(tmp_path / 'new.txt')!r}, 'w')\n")
    r = run_python(program, limits=RAW)
    assert r.stdout == "False False\n" and r.status == "error"
    assert not (tmp_path / "new.txt").exists()
    r = run_python("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)", limits=RAW)
    assert "Operation not permitted" in r.stderr  # seccomp: no socket() at all (the network namespace is empty too)
    r = run_python("import os\nprint(os.getuid() != 0, os.getpid())\nprint(sorted(os.listdir('/')))", limits=RAW)
    assert r.stdout.startswith("True 2\n")  # no root, PID 2 in its own PID namespace (supervisor is 1)
    assert "home" not in r.stdout and "work" not in r.stdout


# ---- limits are verdicts: 0.0 with the reason -----------------------------------------

LIMITED = Limits(timeout_s=1.0, cpu_s=1.0, memory_mb=128, file_mb=1)


@pytest.mark.parametrize(
    ("program", "why"),
    [
        ("while True:\n    pass", "test 1: time limit (1 s)"),
        ("import time\ntime.sleep(100)", "test 1: time limit (1 s)"),
        ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass", "test 1: time limit (1 s)"),
        ("x = bytearray(1 << 30)", "test 1: memory limit (128 MB)"),
        ("import sys\nwhile True:\n    sys.stdout.write('x' * 10**5)", "test 1: output limit"),
    ],
    ids=["busy-loop", "sleep", "ignores-sigxcpu", "memory", "output"],
)
def test_a_limit_scores_zero_with_its_reason(program: str, why: str) -> None:
    verdict = get_factory("code")(timeout_s=1.0, memory_mb=128)(f"```python\n{program}\n```", tests=TESTS)
    assert verdict == 0.0 and verdict.why.startswith(why), verdict.why
    assert verdict.sandbox == ISOLATION
    g = sandbox.grade(program, TESTS, limits=LIMITED)
    assert g.score == 0.0 and g.note.startswith(why), g


def test_a_wrong_answer_has_no_limit_note() -> None:
    verdict = get_factory("code")(timeout_s=2.0)("```python\nprint(0)\n```", tests=TESTS)
    assert verdict == 0.0 and verdict.why is None and verdict.sandbox == ISOLATION


def test_verdicts_survive_pickling() -> None:
    import pickle

    verdict = get_factory("code")(timeout_s=2.0)(ADD, tests=TESTS)
    copy = pickle.loads(pickle.dumps(verdict))
    assert copy == 1.0 and copy.sandbox == verdict.sandbox == ISOLATION


def test_budget_covers_every_test() -> None:
    fn = get_factory("code")(timeout_s=2.0)
    assert fn.budget_s == sandbox.budget_s(Limits(timeout_s=2.0), 1) + 1.0
    assert fn.budget_for({"tests": TESTS * 5}) == sandbox.budget_s(Limits(timeout_s=2.0), 10) + 1.0
    assert fn.budget_for({"tests": "not json"}) == fn.budget_s  # unscorable: it returns at once anyway


@needs_namespaces
def test_the_default_mode_has_seccomp_and_a_process_and_memory_bound() -> None:
    r = run_python("print(open('/proc/self/status').read())", limits=RAW)
    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert ISOLATION.endswith(("+cgroup", "+nofork"))


# ---- extraction is linear on hostile text ---------------------------------------------

@pytest.mark.parametrize(
    ("text", "bound_s"),
    [
        # a last line of ``` and a long tag, no newline: quadratic before (300 KB took 33 s); the
        # target is 0.1 s per MB, measured 0.01-0.04 s here; the bounds leave room for a loaded machine
        ("```" + "a" * 1_000_000, 0.5),
        ("```" + "a+.-" * 250_000, 0.5),
        ("\n```" + "py" * 500_000, 0.5),
        ("```\n" * 250_000, 3.0),  # every line a fence: 250,000 blocks, one Python step each
    ],
    ids=["long-tag", "tag-punctuation", "after-newline", "all-fences"],
)
def test_code_extraction_is_linear(text: str, bound_s: float) -> None:
    start = time.perf_counter()
    extract_code(text)
    assert time.perf_counter() - start < bound_s


@pytest.mark.parametrize("opener", ["\\(", "\\[", "\\begin{x}", "$$ ", "`a\n"])
def test_language_noise_strip_is_linear(opener: str) -> None:
    from r1cli.rewards.language import strip_noise

    text = opener * (200_000 // len(opener))
    start = time.perf_counter()
    strip_noise(text)
    assert time.perf_counter() - start < 2.0  # the regex it replaced: 110 s on 100 KB of "\\("


@needs_namespaces
def test_without_a_cgroup_programs_cannot_fork_but_threads_work(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """No cgroup (a host where none can be made): seccomp denies new processes, so RLIMIT_AS bounds the total."""
    monkeypatch.setattr(sandbox.sandbox_cgroup, "create", lambda *a: None)
    r = run_python("import os\nos.fork()", limits=RAW)
    assert r.isolation.endswith("+nofork") and "PermissionError" in r.stderr, r
    r = run_python("import subprocess\nsubprocess.run(['true'])", limits=RAW)
    assert r.status == "error" and "PermissionError" in r.stderr, r
    r = run_python("import threading\nt = threading.Thread(target=print, args=('hi',))\nt.start()\nt.join()", limits=RAW)
    assert (r.status, r.stdout) == ("ok", "hi\n"), r
    assert survivors(token) == []
