"""The seccomp filter every sandboxed program runs under, compiled by libseccomp (through pyseccomp).

The parent builds the filter once per kind (`program_filter`, cached) and exports it as the
BPF program libseccomp generated; the sandbox child, which runs without site-packages, loads
those bytes with ``prctl(PR_SET_SECCOMP)`` after ``PR_SET_NO_NEW_PRIVS``. Nothing here is
hand-written BPF: libseccomp emits the program, including its architecture check (a syscall
made through another ABI, such as 32-bit ``int 0x80`` on x86-64, kills the process).

The default action is to allow, so that Python and its standard library keep working; the
filter denies (EPERM) what a program never needs and what reaches outside its sandbox:

* other processes' memory and control: ``ptrace``, ``process_vm_readv/writev``, ``kcmp``,
  ``pidfd_open``, ``pidfd_getfd``, ``pidfd_send_signal``, ``process_madvise``;
* sockets (``socket``; ``socketpair`` stays: it reaches no one), ``io_uring`` (its operations
  bypass seccomp);
* mounts and namespaces: ``mount``, ``umount2``, ``pivot_root``, ``chroot``, ``unshare``,
  ``setns``, the new mount API, and ``clone`` with any ``CLONE_NEW*`` flag;
* memory that RLIMIT_AS does not count: ``memfd_create``, ``memfd_secret``;
* kernel surfaces: ``bpf``, ``perf_event_open``, ``userfaultfd``, keyrings, modules, kexec,
  ``open_by_handle_at`` (a known container escape), clocks, host names, swap, reboot, ``acct``;
* ``clone3`` answers ENOSYS: its flags sit in memory a filter cannot read, and glibc then falls
  back to ``clone``, whose flags it can.

Two rules depend on the sandbox. Without a cgroup (nothing bounds the memory of several
processes together: 34 processes x 512 MB), `fork=False` denies new processes (``fork``,
``vfork``, ``clone`` without ``CLONE_THREAD``); threads share one address space and stay
within RLIMIT_AS. Where the kernel does not already keep signals inside the sandbox (no PID
namespace, same uid as r1), `own_signals_only=True` lets ``kill`` reach only the program's own
process group (pid 0) and denies the other signal calls.
"""

from __future__ import annotations

import errno
import functools
import tempfile

# CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
_CLONE_NEW = (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
_CLONE_THREAD = 0x10000

_DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "process_madvise", "socket", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "memfd_create", "memfd_secret",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "swapon",
    "swapoff", "reboot", "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm", "fanotify_init",
    "migrate_pages", "move_pages",
)
_SIGNALS = ("tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


class SeccompUnavailable(OSError):
    """pyseccomp or libseccomp is missing, or cannot build the filter."""


@functools.lru_cache(maxsize=8)
def program_filter(*, fork: bool, own_signals_only: bool) -> bytes:
    """The BPF program (libseccomp's output) for one kind of sandbox; SeccompUnavailable without libseccomp."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, AttributeError) as exc:  # AttributeError: no libseccomp.so.2 to bind
        raise SeccompUnavailable(f"pyseccomp over libseccomp.so.2 is needed for the code sandbox ({exc})") from exc
    deny = sc.ERRNO(errno.EPERM)
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        for name in _DENIED:
            _rule(flt, sc, deny, name)
        _rule(flt, sc, sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in _CLONE_NEW:
            _rule(flt, sc, deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        if not fork:
            _rule(flt, sc, deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
            _rule(flt, sc, deny, "fork")
            _rule(flt, sc, deny, "vfork")
        if own_signals_only:
            _rule(flt, sc, deny, "kill", sc.Arg(0, sc.NE, 0))
            for name in _SIGNALS:
                _rule(flt, sc, deny, name)
        with tempfile.TemporaryFile() as f:
            flt.export_bpf(f)
            f.seek(0)
            return f.read()
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp could not build the sandbox's filter ({exc})") from exc


def _rule(flt, sc, action: int, name: str, *args) -> None:  # noqa: ANN001
    if sc.resolve_syscall(sc.system_arch(), name) < 0:
        return  # not a syscall on this architecture (fork and vfork on arm64): nothing to deny
    flt.add_rule(action, name, *args)
