"""Hostile programs against the code sandbox, in both isolation modes: every attack fails, and scores 0.0.

One table of attacks, one per class the sandbox must stop: escapes through `dir_fd`, reading
r1's own input through /proc (grading itself), secrets in r1's environment, switching the audit
hook off, calls the hook never checked (chdir + listdir, stat and readlink, sqlite ATTACH and
VACUUM INTO, signals to a process outside, shm_open, chroot, namespaces, ptrace), sockets, fork
bombs, memfds past RLIMIT_AS, and forked processes each allocating. Each program prints what
its test expects only if its attack works, so a 0.0 means it failed; the runner also checks
what the program could have changed outside (files made, a victim process killed, a TCP
connection, processes left behind).

`tests/faults/hostile_runner.py` runs the table in a separate process, as a scoring worker:

* **namespaces** (this machine as it is): the default sandbox;
* **fallback** (`setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin`: root without
  CAP_SYS_ADMIN, as in a container started without it): the code reward must refuse, and with
  the opt-in the weaker sandbox (no capabilities or another uid, seccomp, rlimits, cgroup,
  Landlock) must still contain every attack.

Each attack runs through the `code` reward and again with the audit hook off: what a program
that defeated the hook (by clearing its tables, as `audit-table-clear` does, or with crafted
bytecode) meets is the kernel alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from faultkit import R1, ROOT, r1_env

RUNNER = Path(__file__).with_name("hostile_runner.py")
FALLBACK = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--"]
can_drop_caps = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                   reason="simulating a host without CAP_SYS_ADMIN needs root and setpriv")

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except Exception:\n        pass"
DETACH = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(100)\n"
          "    os._exit(0)\nprint('detached')")
PROC_INPUT = """\
import os
for pid in os.listdir('/proc'):
    try:
        args = open('/proc/' + pid + '/cmdline', 'rb').read().split(b'\\0')
    except Exception:
        continue
    for a in args:
        if a.endswith(b'.jsonl'):
            text = open(a.decode()).read()
            i = text.find('EXPECTED-')
            print(text[i:i + 21])"""
ENV_SECRET = """\
import os
print(os.environ.get('OPENAI_API_KEY', ''))
for pid in os.listdir('/proc'):
    try:
        env = open('/proc/' + pid + '/environ', 'rb').read()
    except Exception:
        continue
    i = env.find(b'OPENAI_API_KEY=')
    if i >= 0:
        print(env[i + 15:].split(b'\\0')[0].decode())
        break"""
AUDIT_CLEAR = """\
import os, sys
f = sys._getframe(0)
while f is not None:
    if '_PATH_EVENTS' in f.f_globals:
        f.f_globals['_PATH_EVENTS'].clear()
    f = f.f_back
print(os.listdir('{secret_dir}'))"""
MANY_ALLOC = """\
import os, time
kids = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        x = bytearray(180 << 20)
        for i in range(0, len(x), 4096):
            x[i] = 1
        time.sleep(0.3)
        os._exit(0)
    kids.append(pid)
print('ALLOCATED' if all(os.waitpid(p, 0)[1] == 0 for p in kids) else 'no')"""
MEMFD_FLOOD = """\
import os
fds = []
for _ in range(60):
    fd = os.memfd_create('x')
    os.write(fd, b'x' * (15 << 20))
    fds.append(fd)
print('FLOODED')"""

# attack → (program, the output its test expects: what it prints if the attack worked)
ATTACKS = {
    "dir-fd-read": ("import os\nfd = os.open('.', os.O_RDONLY)\n"
                    "print(os.read(os.open('../' * 30 + '{secret_path}'[1:], os.O_RDONLY, dir_fd=fd), 100).decode())",
                    "{secret}"),
    "dir-fd-write": ("import os\nfd = os.open('.', os.O_RDONLY)\n"
                     "os.close(os.open('../' * 30 + '{outside}/dirfd.txt'[1:], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))"
                     "\nprint('WROTE')", "WROTE"),
    "plant-pth": ("open('{site}/r1-hostile-{tag}.pth', 'w').write('# hostile')\nprint('PLANTED')", "PLANTED"),
    "write-outside": ("open('{outside}/plain.txt', 'w').write('x')\nprint('WROTE')", "WROTE"),
    "read-secret-file": ("print(open('{secret_path}').read())", "{secret}"),
    "grading-via-proc": (PROC_INPUT, "{grading}"),
    "env-secret": (ENV_SECRET, "{secret}"),
    "audit-table-clear": (AUDIT_CLEAR, "['secret.txt']"),
    "chdir-listdir": ("import os\nos.chdir('{secret_dir}')\nprint(os.listdir())", "['secret.txt']"),
    "stat-outside": ("import os\nprint(os.stat('{secret_path}').st_size)", "{secret_size}"),
    "readlink-parent": ("import os\nprint(os.readlink('/proc/{runner}/cwd'))", "{runner_cwd}"),
    "proc-mem-of-victim": ("open('/proc/{victim}/mem', 'rb')\nprint('MEM')", "MEM"),
    "sqlite-attach": ("import sqlite3\nc = sqlite3.connect(':memory:')\n"
                      "c.execute(\"ATTACH DATABASE '{outside}/attach.db' AS x\")\nc.execute('CREATE TABLE x.t (a)')\n"
                      "c.commit()\nprint('WROTE')", "WROTE"),
    "sqlite-vacuum-into": ("import sqlite3\nc = sqlite3.connect(':memory:')\nc.execute('CREATE TABLE t (a)')\n"
                           "c.execute(\"VACUUM INTO '{outside}/vacuum.db'\")\nprint('WROTE')", "WROTE"),
    "kill-victim": ("import os, signal\nos.kill({victim}, signal.SIGKILL)\nprint('KILLED')", "KILLED"),
    "kill-the-worker": ("import os, signal\nos.kill({runner}, signal.SIGKILL)\nprint('KILLED')", "KILLED"),
    "pidfd-kill-victim": ("import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({victim}), signal.SIGKILL)\n"
                          "print('KILLED')", "KILLED"),
    "ptrace-victim": ("import ctypes\nlibc = ctypes.CDLL(None)\n"
                      "print('ATTACHED' if libc.ptrace(16, {victim}, 0, 0) == 0 else 'no')", "ATTACHED"),
    "shm-open": ("import _posixshmem, os\n_posixshmem.shm_open('/r1-hostile-{tag}', os.O_CREAT | os.O_RDWR, 0o600)\n"
                 "print('SHM')", "SHM"),
    "chroot": ("import os\nos.chroot('.')\nprint('CHROOT')", "CHROOT"),
    "new-user-namespace": ("import ctypes\nlibc = ctypes.CDLL(None)\n"
                           "print('UNSHARED' if libc.unshare(0x10000000) == 0 else 'no')", "UNSHARED"),
    "socket": ("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')\n"
               "print('SENT')", "SENT"),
    "os-system": ("import os\nprint(os.system('echo pwned'))", "pwned\n0"),
    "setsid-detach": (DETACH, "outlived the sandbox"),  # what counts: no process left (`survivors`)
    "fork-bomb": (FORK_BOMB, "survived"),
    "memfd-flood": (MEMFD_FLOOD, "FLOODED"),
    "many-processes-allocating": (MANY_ALLOC, "ALLOCATED"),
}
# Without namespaces the files' metadata stays visible: Landlock governs opening, not stat()
# (docs/sandbox.md says so). The contents are not.
KNOWN_FALLBACK_GAPS = {"stat-outside"}


def run_suite(tmp: Path, prefix: list[str], opt_in: bool) -> dict:
    tag = os.urandom(6).hex()
    secret_dir = tmp / f"secret-{tag}"
    secret_dir.mkdir()
    secret = "SECRET-" + os.urandom(8).hex()
    (secret_dir / "secret.txt").write_text(secret)
    outside = tmp / "outside"
    outside.mkdir()
    for path in (tmp, secret_dir, outside):  # open to every uid: only the sandbox may stand in the way
        path.chmod(0o777 if path == outside else 0o755)
    (secret_dir / "secret.txt").chmod(0o644)
    site = sysconfig.get_paths()["purelib"]
    ctx = {"secret": secret, "secret_dir": str(secret_dir), "secret_path": str(secret_dir / "secret.txt"),
           "secret_size": str(len(secret)), "outside": str(outside), "site": site, "tag": tag,
           "grading": "EXPECTED-" + os.urandom(6).hex(), "runner_cwd": str(ROOT),
           "made": [str(outside / n) for n in ("dirfd.txt", "plain.txt", "attach.db", "vacuum.db")]
           + [f"{site}/r1-hostile-{tag}.pth", f"/dev/shm/r1-hostile-{tag}"]}
    source = tmp / "input.jsonl"  # the record r1 reads: the expected outputs are in it
    source.write_text(json.dumps({"attacks": ATTACKS, "ctx": ctx}) + "\n")
    out = tmp / "report.json"
    cmd = [*prefix, sys.executable, str(RUNNER), str(source), str(out), *(["--opt-in"] if opt_in else [])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=r1_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_suite(tmp_path_factory.mktemp("ns"), [], opt_in=False)


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_suite(tmp_path_factory.mktemp("fallback"), FALLBACK, opt_in=True)


def check(result: dict) -> None:
    assert "refused" not in result, result
    assert result["score"] == 0.0, result  # 0.0, not None: a contained attack is a wrong answer
    assert result["victim_alive"] and not result["connected"], result
    assert result["made"] == [] and result["survivors"] == 0, result


@pytest.mark.parametrize("variant", ["reward", "no-audit"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_fails_in_the_namespace_sandbox(namespaces: dict, attack: str, variant: str) -> None:
    result = namespaces["results"][f"{attack}/{variant}"]
    check(result)
    assert result["sandbox"].startswith(("namespaces+seccomp", "user-namespaces+seccomp")), result


@can_drop_caps
@pytest.mark.parametrize("variant", ["reward", "no-audit"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_fails_in_the_opted_in_fallback(fallback: dict, attack: str, variant: str) -> None:
    if attack in KNOWN_FALLBACK_GAPS:
        pytest.xfail("without namespaces a file's metadata stays visible (docs/sandbox.md)")
    result = fallback["results"][f"{attack}/{variant}"]
    check(result)
    assert result["sandbox"].startswith("unconfined-optin(") and "seccomp" in result["sandbox"], result


@can_drop_caps
def test_the_known_fallback_gap_is_only_metadata(fallback: dict) -> None:
    """stat() works without namespaces; reading the same file does not."""
    assert fallback["results"]["stat-outside/no-audit"]["score"] == 1.0
    check(fallback["results"]["read-secret-file/no-audit"])


@can_drop_caps
def test_the_fallback_refuses_without_the_opt_in(tmp_path: Path) -> None:
    report = run_suite(tmp_path, FALLBACK, opt_in=False)
    assert "CAP_SYS_ADMIN" in report["refused"] and "allow_unconfined" in report["refused"]
    assert report["results"] and all("refused" in r for r in report["results"].values())


@can_drop_caps
@pytest.mark.parametrize("opt_in", [[], ["--reward-arg", "code.allow_unconfined=true"], "env"], ids=["refuse", "flag", "env"])
def test_r1_score_refuses_or_warns_once(tmp_path: Path, opt_in: list[str] | str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "completion": "```python\nprint(int(input()) * 2)\n```",
                                       "tests": [{"input": "2", "output": "4"}]}) + "\n" for i in range(3)))
    env = r1_env()
    env.pop("R1_ALLOW_UNCONFINED_CODE", None)
    if opt_in == "env":
        env["R1_ALLOW_UNCONFINED_CODE"] = "1"
    args = [] if opt_in == "env" else opt_in
    proc = subprocess.run([*FALLBACK, *R1, "score", str(src), "-r", "code", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    if opt_in == []:
        assert proc.returncode == 1 and proc.stdout == ""
        assert "lacks CAP_SYS_ADMIN" in proc.stderr and "--cap-add SYS_ADMIN" in proc.stderr, proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Warning: the code reward runs untrusted programs WITHOUT") == 1, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["rewards"]["code"] for r in records] == [1.0] * 3
    assert all(r["sandbox"].startswith("unconfined-optin(") for r in records)
