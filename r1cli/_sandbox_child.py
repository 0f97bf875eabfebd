"""The child side of the code sandbox (see r1cli.sandbox).

This module is not imported by the parent to run code: `r1cli.sandbox` compiles its source once
and runs it as `python -I -S CHILD.pyc JOB`, so it uses `os`, `sys` and the standard library
only, imported in the functions that need them, so that the sandbox starts fast.
"""

from __future__ import annotations

import os
import sys


_NS, _UTS, _IPC, _USER, _PID, _NET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
_RDONLY, _NOSUID, _NODEV, _NOEXEC, _REMOUNT, _BIND, _REC, _PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
_STREAMS = ("/dev/stdin", "/dev/stdout", "/dev/stderr", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2")
_DENY_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.", "pty.",
                "socket.", "ctypes.", "resource.setrlimit", "resource.prlimit", "gc.get_", "os.killpg", "os.symlink",
                "os.link", "sqlite3.enable_load_extension", "sqlite3.load_extension")
_DENY_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi",
                           "_testinternalcapi"})
# audited calls on a path: 1 if they write
_PATH_EVENTS = {"os.listdir": 0, "os.scandir": 0, "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.truncate": 1,
                "os.chmod": 1, "os.chown": 1, "os.utime": 1, "os.mkfifo": 1, "os.mknod": 1, "os.setxattr": 1,
                "os.removexattr": 1, "os.chflags": 1, "os.lchflags": 1}
_LIBC: _Libc | None = None
# Landlock (linux/landlock.h): ABI 1 handles bits 0-12 of the file-system rights; ABI 2 adds REFER,
# 3 TRUNCATE, 5 IOCTL_DEV. 4 adds TCP bind/connect, 6 scopes abstract unix sockets and signals.
_LL_FS = {1: 0x1FFF, 2: 0x3FFF, 3: 0x7FFF, 4: 0x7FFF, 5: 0xFFFF}
_LL_READ, _LL_FILE_RW, _LL_FILE_READ = 0x1 | 0x4 | 0x8, 0x2 | 0x4, 0x4  # EXECUTE|READ_FILE|READ_DIR, WRITE|READ


def _read_roots() -> list[str]:
    """The read-only paths a program needs: the standard library and the system libraries."""
    paths = [p for p in sys.path if p] + [os.path.join(sys.base_prefix, "lib")]
    paths += ["/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/usr/share/zoneinfo"]
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Libc:
    """prctl, capset, unshare and mount through libc (the os module has no mount())."""

    def __init__(self) -> None:
        import ctypes

        if not sys.platform.startswith("linux"):
            raise OSError("namespaces and prctl are Linux-only")
        self.ctypes, self.libc = ctypes, ctypes.CDLL(None, use_errno=True)

    def check(self, ret: int, what: str) -> None:
        if ret != 0:
            err = self.ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(self, src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        args = [s.encode() if s is not None else None for s in (src, target, fstype)]
        self.check(self.libc.mount(*args, self.ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")

    def die_with_parent(self) -> None:
        self.libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = SIGKILL
        self.libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS

    def seccomp_program(self, bpf: bytes):  # noqa: ANN201
        """A `struct sock_fprog` for libseccomp's exported filter (8 bytes per instruction)."""
        ct = self.ctypes

        class Fprog(ct.Structure):
            _fields_ = [("len", ct.c_ushort), ("filter", ct.c_void_p)]

        buf = ct.create_string_buffer(bpf, len(bpf))
        prog = Fprog(len(bpf) // 8, ct.addressof(buf))
        prog.keep = buf
        return prog

    def load_seccomp(self, prog) -> None:  # noqa: ANN001
        self.check(self.libc.prctl(38, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        self.check(self.libc.prctl(22, 2, self.ctypes.byref(prog), 0, 0), "prctl(SECCOMP_MODE_FILTER)")

    def landlock(self, reads: list[str], work: str) -> str:
        """Confine this process and its children to reading `reads` and writing `work`: the status word."""
        ct, sys_ = self.ctypes, self.libc.syscall
        sys_.restype = ct.c_long
        abi = sys_(444, None, ct.c_size_t(0), ct.c_uint32(1))  # landlock_create_ruleset(VERSION)
        if abi < 0:
            return "no-landlock"
        fs = _LL_FS.get(abi, 0xFFFF)
        attr = (ct.c_uint64 * 3)(fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        ruleset = sys_(444, ct.byref(attr), ct.c_size_t(size), ct.c_uint32(0))
        if ruleset < 0:
            raise OSError(ct.get_errno(), "landlock_create_ruleset")

        class Beneath(ct.Structure):
            _pack_ = 1
            _fields_ = [("allowed", ct.c_uint64), ("fd", ct.c_int32)]

        try:
            rules = [(p, _LL_READ) for p in reads] + [(work, fs)]
            rules += [("/dev/null", _LL_FILE_RW)] + [(p, _LL_FILE_READ) for p in _DEVICES[1:]]
            for path, allowed in rules:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    if not os.path.isdir(path):
                        allowed &= 0x1 | 0x2 | 0x4 | (fs & 0xC000)  # a file takes file rights only
                    rule = Beneath(allowed & fs, fd)
                    if sys_(445, ruleset, 1, ct.byref(rule), ct.c_uint32(0)) != 0:
                        raise OSError(ct.get_errno(), f"landlock_add_rule {path}")
                finally:
                    os.close(fd)
            self.check(self.libc.prctl(38, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
            if sys_(446, ruleset, ct.c_uint32(0)) != 0:
                raise OSError(ct.get_errno(), "landlock_restrict_self")
        finally:
            os.close(ruleset)
        return f"landlock-v{abi}"

    def not_dumpable(self) -> None:
        """No ptrace and no /proc/PID/mem, environ or fd of this process for others of the same uid."""
        self.libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE

    def drop_capabilities(self, bounding: bool = False) -> None:
        if bounding:  # and for good: an exec'd program (root's file capabilities) gets none back either
            for cap in range(64):
                self.libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last capability
            self.libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
        header = (self.ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        self.check(self.libc.capset(header, (self.ctypes.c_uint32 * 6)()), "capset")

    def enter(self, root: str, file_mb: int) -> None:
        """New namespaces, and a minimal tree on a tmpfs at `root`; PID namespace last (it is not undone)."""
        uid, gid = os.getuid(), os.getgid()
        self.check(self.libc.unshare(_NS | _NET | _IPC | _UTS | (_USER if uid else 0)), "unshare")
        if uid:  # unprivileged: map our own ids; the capabilities hold inside the new namespaces only
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        self.mount(None, "/", None, _REC | _PRIVATE)
        self.mount("tmpfs", root, "tmpfs", _NOSUID | _NODEV, f"size={4 * file_mb}m,nr_inodes=8192,mode=755")
        bound: list[str] = []
        for path in sorted(_read_roots()):
            if not (os.path.islink(path) and path.count("/") == 1) and not any(path.startswith(b + "/") for b in bound):
                self._bind(path, root + path)
                bound.append(path)
        for path in ("/lib", "/lib64", "/bin"):  # merged-/usr links
            if os.path.islink(path) and not os.path.lexists(root + path):
                os.symlink(os.readlink(path), root + path)
        for path in _DEVICES:
            self._bind(path, root + path, readonly=False)
        for i, name in enumerate(("stdin", "stdout", "stderr")):
            os.symlink(f"/proc/self/fd/{i}", f"{root}/dev/{name}")
        os.mkdir(root + "/proc")
        os.mkdir(root + "/tmp", 0o1777)
        os.chmod(root + "/tmp", 0o1777)
        self.check(self.libc.unshare(_PID), "unshare(pid)")

    def _bind(self, src: str, target: str, readonly: bool = True) -> None:
        os.makedirs(target if os.path.isdir(src) else os.path.dirname(target), exist_ok=True)
        if not os.path.isdir(src):
            open(target, "a").close()
        self.mount(src, target, None, _BIND | _REC)
        if readonly:
            self.mount(None, target, None, _REMOUNT | _BIND | _RDONLY | _NOSUID | _NODEV)


def _readable_by_others(paths: list[str]) -> bool:
    """Whether a process with a fresh uid could still read `paths` (the standard library)."""
    for path in paths:
        p = os.path.realpath(path)
        need = 0o005 if os.path.isdir(p) else 0o004  # the path itself: readable (and searchable)
        while True:
            try:
                if os.stat(p).st_mode & need != need:
                    return False
            except OSError:
                return False
            if p == "/":
                break
            p, need = os.path.dirname(p), 0o001  # every directory above it: searchable
    return True


def _owned(pid: str, uid: int) -> bool:
    try:
        return os.stat("/proc/" + pid).st_uid == uid
    except OSError:
        return False


def _missing(exc: OSError) -> str:
    """Why the namespaces could not be made: the mechanism that is missing."""
    if os.getuid() == 0:
        return f"this process is root but lacks CAP_SYS_ADMIN ({exc.strerror}: a container started without it)"
    for path, off in (("/proc/sys/kernel/unprivileged_userns_clone", "0"), ("/proc/sys/user/max_user_namespaces", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")):
        try:
            with open(path) as f:
                if f.read().strip() == off:
                    return f"unprivileged user namespaces are disabled ({path.rsplit('/', 1)[1]} = {off})"
        except OSError:
            continue
    return f"unprivileged user namespaces are not permitted here ({exc.strerror})"


def _child_main(job_path: str) -> None:
    import marshal

    global _LIBC
    with open(job_path, "rb") as f:
        job = marshal.load(f)
    for path in (job_path, sys.argv[0]):  # the job and this program are loaded: nothing for the program to see
        os.unlink(path)
    try:
        _LIBC = _Libc()
    except (ImportError, OSError) as exc:  # no ctypes: no namespaces, no seccomp
        _write_all(1, f"R the sandbox needs ctypes and Linux ({exc})\n".encode())
        return
    # opened now, as the user r1 runs as, before the chroot hides /sys: the test processes join through them
    groups = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in job["cgroup_procs"]]
    events = os.open(job["cgroup_events"], os.O_RDONLY | os.O_CLOEXEC) if job["cgroup_events"] else None
    isolated, why = False, "the namespace sandbox was not requested (Limits(namespaces=False))"
    if job["namespaces"]:
        try:
            _LIBC.enter(job["base"], job["file_mb"])  # a tmpfs over the (now empty) sandbox dir
            isolated = True
        except (OSError, AttributeError) as exc:
            why = _missing(exc) if isinstance(exc, OSError) else str(exc)
    if not isolated and not job["allow_unconfined"]:
        _write_all(1, f"R {why}\n".encode())
        return
    _LIBC.die_with_parent()
    work = job["base"]
    if isolated:
        pid = os.fork()
        if pid:  # stay outside the PID namespace until its init, the supervisor, is gone
            os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)
        try:
            _LIBC.mount("proc", work + "/proc", "proc", _NOSUID | _NODEV | _NOEXEC)
        except OSError:
            pass  # /dev/stdin and /proc/self are then missing; nothing else needs them
        os.chroot(work)
        work = "/tmp"
    os.chdir(work)
    uid, nproc, layers = job["uid"], None, []
    if uid is not None and not isolated and not _readable_by_others(_read_roots()):
        # The interpreter lives where only root can read (a pyenv in root's home): stay uid 0, without a single
        # capability; Landlock (required below) then keeps it to the read roots and its own dir.
        uid = None
        _LIBC.drop_capabilities(bounding=True)
        layers.append("nocaps")
    if uid is not None:
        os.chown(work, uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # a fresh uid: no capabilities, and RLIMIT_NPROC counts this sandbox only
        nproc = job["processes"] + 2
        layers.append("uid")
    elif isolated:
        _LIBC.drop_capabilities()
        nproc = job["processes"] + 2
    elif os.path.isdir("/proc"):  # RLIMIT_NPROC counts all the user's processes
        nproc = sum(1 for p in os.listdir("/proc") if p.isdigit() and _owned(p, os.geteuid())) + job["processes"]
    _LIBC.die_with_parent()  # changing credentials cleared it
    _LIBC.not_dumpable()
    os.environ.clear()
    os.environ.update({"HOME": work, "TMPDIR": work, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    layers += ["seccomp", "rlimits", "cgroup" if groups else "nofork"]
    if isolated:
        mode = ("namespaces" if os.getuid() == 0 or uid is not None else "user-namespaces") + "+" + "+".join(
            x for x in layers if x not in ("uid", "rlimits"))
    else:
        try:
            layers.append(_LIBC.landlock(_read_roots(), work))
        except OSError as exc:
            _write_all(1, f"R Landlock is present but could not be applied ({exc})\n".encode())
            return
        if "uid" not in layers and layers[-1] == "no-landlock":  # nothing between the program and r1's files
            who = b"root (the standard library is readable by root only)" if "nocaps" in layers else b"your user"
            _write_all(1, b"R this kernel has no Landlock and the program would run as " + who
                       + b", with every file of that user open to it\n")
            return
        mode = f"unconfined-optin({','.join(layers)})"
    _write_all(1, f"M {mode}\n".encode())
    prog = _LIBC.seccomp_program(job["seccomp_ns" if isolated else "seccomp_fallback"])
    _supervise(job, work, nproc, (prog, groups, events))
    os._exit(0)


def _limits(job: dict, nproc: int | None, cpu_s: float, program: bool = True) -> None:
    import resource

    wanted = {resource.RLIMIT_AS: job["memory_mb"] << 20, resource.RLIMIT_CPU: max(1, int(cpu_s + 0.999)),
              resource.RLIMIT_CORE: 0}
    if program:  # not for the supervisor: it writes the tests' inputs, of any size
        wanted.update({resource.RLIMIT_FSIZE: job["file_mb"] << 20, resource.RLIMIT_NOFILE: 64})
    if nproc is not None:
        wanted[resource.RLIMIT_NPROC] = nproc
    for kind, value in wanted.items():  # the hard CPU limit 1 s later: SIGXCPU first, then SIGKILL
        try:
            resource.setrlimit(kind, (value, value + 1 if kind == resource.RLIMIT_CPU else value))
        except (ValueError, OSError):  # not supported here (RLIMIT_AS on macOS); Linux takes them all
            pass


def _memfd(name: str, data: bytes = b"") -> int:
    try:
        fd = os.memfd_create(name)
    except (AttributeError, OSError):  # not Linux: an unlinked file in the sandbox dir
        fd = os.open(f".{name}-{os.getpid()}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(f".{name}-{os.getpid()}")
    _write_all(fd, data)
    os.lseek(fd, 0, 0)
    return fd


def _read_capped(fd: int, cap: int) -> tuple[bytes, int]:
    """The first `cap` bytes of `fd`, and its full size."""
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, 0)
    chunks, left = [], min(size, cap)
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), size


def _wait(pid: int, timeout: float) -> int | None:
    """The wait status of `pid`, or None if it still runs after `timeout` seconds."""
    import select
    import time

    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        end = time.monotonic() + timeout
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            if time.monotonic() >= end:
                return None
            time.sleep(0.002)
        return done[1]
    try:
        if not select.select([fd], [], [], timeout)[0]:
            return None
    finally:
        os.close(fd)
    return os.waitpid(pid, 0)[1]


def _kill_group(pgid: int) -> None:
    for _ in range(2):  # the kernel makes fork atomic against group signals; twice is for luck
        try:
            os.killpg(pgid, 9)
        except OSError:
            return


def _oom_kills(fd: int | None) -> int:
    if fd is None:
        return 0
    for line in os.pread(fd, 4096, 0).decode("ascii", "replace").splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def _supervise(job: dict, work: str, nproc: int | None, confine: tuple) -> None:
    """Compile once, then run each test in a forked process; one frame per test on stdout."""
    import time

    _limits(job, None, job["cpu_s"] + 2, program=False)  # the compile step is bounded too
    try:
        compiled = compile(job["code"], "main.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as exc:
        import traceback

        message = "".join(traceback.format_exception_only(type(exc), exc)).encode("utf-8", "replace")
        _write_all(1, b"C %d\n" % len(message) + message)
        return
    try:
        with open("main.py", "w", encoding="utf-8") as f:  # source lines for tracebacks
            f.write(job["code"])
    except OSError:
        pass
    roots = tuple(os.path.realpath(p) for p in _read_roots())
    for i, (data, cap) in enumerate(zip(job["inputs"], job["caps"])):
        fds = (_memfd("stdin", data), _memfd("stdout"), _memfd("stderr"))
        start, timed_out, status, ooms = time.monotonic(), False, 0, _oom_kills(confine[2])
        try:
            pid = os.fork()
        except OSError as exc:
            pid, fork_error = -1, str(exc).encode()
        if pid == 0:
            _run_program(compiled, fds, job, work, nproc, roots, confine)
        if pid > 0:
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
            status = _wait(pid, job["timeout_s"])
            if status is None:
                timed_out = True
                _kill_group(pid)
                status = os.waitpid(pid, 0)[1]
            _kill_group(pid)
        duration = time.monotonic() - start
        out, out_size = _read_capped(fds[1], cap)
        err, err_size = _read_capped(fds[2], job["err_cap"]) if pid > 0 else (fork_error, 0)
        for fd in fds:
            os.close(fd)
        rc = None
        if pid < 0:
            state = "error"
        elif _oom_kills(confine[2]) > ooms:  # the cgroup's memory bound: the kernel killed a process
            state, rc = "memory_limit", -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        elif timed_out or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == 24):  # SIGXCPU
            state = "timeout"
        elif os.WIFSIGNALED(status):
            state, rc = "killed", -os.WTERMSIG(status)
        else:
            rc = os.WEXITSTATUS(status)
            state = "output_limit" if max(out_size, err_size) >= job["file_mb"] << 20 else "ok" if rc == 0 else "error"
        head = f"T {i} {state} {rc} {duration:.6f} {len(out)} {out_size} {len(err)} {err_size}\n"
        _write_all(1, head.encode() + out + err)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:  # reap orphans re-parented to us (PID 1)
                pass
        except ChildProcessError:
            pass


def _run_program(compiled, fds: tuple[int, int, int], job: dict, work: str, nproc: int | None,  # noqa: ANN001
                 roots: tuple[str, ...], confine: tuple) -> None:
    """In the forked test process: wire the streams, set the limits, guard, run; never returns."""
    import builtins
    import io

    def stream(fd: int, mode: str, errors: str, **kw: object):  # noqa: ANN202
        raw = io.FileIO(fd, mode, closefd=False)
        return io.TextIOWrapper(io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw),
                                encoding="utf-8", errors=errors, **kw)

    rc = 1
    try:
        os.setpgid(0, 0)
        if _LIBC is not None:
            _LIBC.die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        prog, groups = confine[0], confine[1]
        for fd in groups:  # into the sandbox's cgroup: its memory and process bounds count from here
            os.write(fd, b"0")
        os.closerange(3, 1 << 16)
        _limits(job, nproc, job["cpu_s"])
        _LIBC.load_seccomp(prog)  # last: the filter denies what the steps above needed
        sys.stdin = sys.__stdin__ = stream(0, "r", "surrogateescape")
        sys.stdout = sys.__stdout__ = stream(1, "w", "surrogateescape")
        sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace", line_buffering=True)
        sys.argv = ["main.py"]
        builtins.exit = builtins.quit = _quit  # `site` defines them, and -S skips `site`
        if job["audit"]:
            for name in [m for m in sys.modules if m.split(".")[0] in _DENY_IMPORTS]:
                del sys.modules[name]
            _guard(work, roots)
        main = type(sys)("__main__")  # a fresh module: pickle and `import __main__` see the program's
        main.__file__ = os.path.join(work, "main.py")
        sys.modules["__main__"] = main
        exec(compiled, main.__dict__)
        rc = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            rc = (exc.code or 0) & 0xFF
        else:
            print(exc.code, file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - the program's error: a traceback on its stderr, as python does
        try:
            exc = exc.with_traceback(exc.__traceback__.tb_next)  # from the program's first frame on
            sys.excepthook(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: BLE001
            pass
    try:  # what interpreter shutdown does: wait for threads, run atexit, flush
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        rc = rc or 1
    os._exit(rc)


def _quit(code: object = None) -> None:
    raise SystemExit(code)


def _guard(work: str, roots: tuple[str, ...]) -> None:
    """Install the audit hook. Everything it calls is bound now (default arguments, C functions), so
    that patching builtins or os cannot weaken it; objects that could answer a second call
    differently (str subclasses, PathLike) are refused."""

    def resolve(path, lstat=os.lstat, readlink=os.readlink, getcwd=os.getcwd, reversed=reversed):  # noqa: A002, ANN001
        """Like os.path.realpath, from C functions only."""
        path = path if path[:1] == "/" else getcwd() + "/" + path
        todo, out, links = [p for p in reversed(path.split("/")) if p], [], 0
        while todo:
            part = todo.pop()
            if part == "..":
                out = out[:-1]
            elif part != ".":
                try:
                    is_link = (lstat("/" + "/".join([*out, part])).st_mode & 0o170000) == 0o120000
                except OSError:
                    is_link = False
                if not is_link:
                    out.append(part)
                    continue
                links += 1
                if links > 40:
                    raise PermissionError("sandbox: too many symbolic links")
                target = readlink("/" + "/".join([*out, part]))
                out = [] if target[:1] == "/" else out
                todo.extend(p for p in reversed(target.split("/")) if p)
        return "/" + "/".join(out)

    def allowed(path, write, opening=False, type=type, str=str, bytes=bytes, int=int, any=any,  # noqa: A002, ANN001
                decode=bytes.decode, stat=os.stat, resolve=resolve, work=work, roots=roots,
                special=frozenset(_STREAMS + _DEVICES)):
        if path is None or type(path) is int:  # an fd: fine to open (open(0)), not to list (dir_fd escapes)
            return opening or path is None
        if type(path) is bytes:
            path = decode(path, "utf-8", "surrogateescape")
        elif type(path) is not str:
            return False
        if path in special:
            return True
        real = resolve(path)
        if real == work or real.startswith(work + "/"):
            return True
        if write or not any(real == r or real.startswith(r + "/") for r in roots):
            return False
        try:  # no directory descriptors outside the sandbox
            return not (opening and (stat(real).st_mode & 0o170000) == 0o040000)
        except OSError:
            return True

    def hook(event, args, allowed=allowed, deny=_DENY_EVENTS, imports=_DENY_IMPORTS, paths=_PATH_EVENTS,  # noqa: ANN001
             pid=os.getpid(), write_flags=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
             type=type, str=str, int=int, any=any):  # noqa: A002
        if event == "open":
            path, mode, flags = args
            if type(mode) is str:
                write = any(c in mode for c in "wax+")
            elif mode is None and (flags is None or type(flags) is int):
                write = bool((flags or 0) & write_flags)
            else:
                raise PermissionError("sandbox: open() with an unusual mode")
            if not allowed(path, write, opening=True):
                raise PermissionError(f"sandbox: access to {path!r} is not allowed")
        elif event in paths:
            if not allowed(args[0], paths[event] == 1):
                raise PermissionError(f"sandbox: {event} on {args[0]!r} is not allowed")
        elif event in ("os.rename", "os.replace"):
            if not (allowed(args[0], True) and allowed(args[1], True)):
                raise PermissionError(f"sandbox: {event} outside the sandbox is not allowed")
        elif event == "import":
            name, filename = args[0], args[1]
            stem = filename.rsplit("/", 1)[-1].split(".")[0] if type(filename) is str else ""
            if type(name) is not str or stem in imports or any(p in imports for p in name.split(".")):
                raise ImportError(f"sandbox: import of {name} is not allowed")
        elif event == "os.kill":
            if args[0] != pid:
                raise PermissionError("sandbox: signals to other processes are not allowed")
        elif event == "sqlite3.connect":
            if not (type(args[0]) is str and args[0] == ":memory:") and not allowed(args[0], True):
                raise PermissionError("sandbox: a database outside the sandbox is not allowed")
        elif event.startswith(deny):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)
