"""System call numbers of the Linux generic ABI that RISC-V uses (include/uapi/asm-generic/unistd.h).

The simulated kernel is RV32 but, like rv64 Linux, offers the ``__NR3264_*`` calls under their
64-bit names (``newfstatat``/``fstat`` at 79/80, ``mmap`` at 222 with a byte offset,
``getrlimit``/``setrlimit``, ``wait4``, ``clock_gettime``/``nanosleep``), which real rv32
Linux replaces by their 64-bit-time and ``*64`` variants; the numbers are the same slots.
"""

from __future__ import annotations

getcwd = 17
dup = 23
dup3 = 24
fcntl = 25
ioctl = 29
mknodat = 33
mkdirat = 34
unlinkat = 35
symlinkat = 36
linkat = 37
umount2 = 39
mount = 40
pivot_root = 41
ftruncate = 46
faccessat = 48
chdir = 49
fchdir = 50
chroot = 51
fchmodat = 53
fchownat = 54
openat = 56
close = 57
pipe2 = 59
getdents64 = 61
lseek = 62
read = 63
write = 64
readv = 65
writev = 66
readlinkat = 78
newfstatat = 79
fstat = 80
capget = 90
capset = 91
exit = 93
exit_group = 94
set_tid_address = 96
unshare = 97
nanosleep = 101
clock_gettime = 113
sched_yield = 124
kill = 129
tkill = 130
tgkill = 131
rt_sigaction = 134
rt_sigprocmask = 135
setgid = 144
setuid = 146
getgroups = 158
setgroups = 159
uname = 160
sethostname = 161
setdomainname = 162
getrlimit = 163
setrlimit = 164
umask = 166
prctl = 167
getpid = 172
getppid = 173
getuid = 174
geteuid = 175
getgid = 176
getegid = 177
gettid = 178
msgget = 186
msgctl = 187
msgrcv = 188
msgsnd = 189
brk = 214
munmap = 215
clone = 220
execve = 221
mmap = 222
mprotect = 226
wait4 = 260
prlimit64 = 261
setns = 268
renameat2 = 276
seccomp = 277

#: number -> name, for traces, strace-like output and the seccomp plugin.
NAMES: dict[int, str] = {
    v: k for k, v in dict(globals()).items() if not k.startswith("_") and isinstance(v, int)
}
#: name -> number.
NUMBERS: dict[str, int] = {v: k for k, v in NAMES.items()}


def name_of(nr: int) -> str:
    return NAMES.get(nr, f"syscall_{nr}")
