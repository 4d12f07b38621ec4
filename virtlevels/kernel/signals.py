"""Signal numbers and default actions (signal(7); include/uapi/asm-generic/signal.h).

No user signal handlers are modelled yet: every signal takes its default action. Terminating
signals end the thread group; SIGCHLD, SIGURG and SIGWINCH are ignored; the stop signals and
SIGCONT are accepted and ignored (job control is not modelled).
"""

from __future__ import annotations

SIGHUP = 1
SIGINT = 2
SIGQUIT = 3
SIGILL = 4
SIGTRAP = 5
SIGABRT = 6
SIGBUS = 7
SIGFPE = 8
SIGKILL = 9
SIGUSR1 = 10
SIGSEGV = 11
SIGUSR2 = 12
SIGPIPE = 13
SIGALRM = 14
SIGTERM = 15
SIGSTKFLT = 16
SIGCHLD = 17
SIGCONT = 18
SIGSTOP = 19
SIGTSTP = 20
SIGTTIN = 21
SIGTTOU = 22
SIGURG = 23
SIGXCPU = 24
SIGXFSZ = 25
SIGVTALRM = 26
SIGPROF = 27
SIGWINCH = 28
SIGIO = 29
SIGPWR = 30
SIGSYS = 31
NSIG = 64  # _NSIG: signals 32..64 are the real-time ones (default action: terminate)

#: signal(7) "Standard signals": default action "Ign", and the job-control ones not modelled.
IGNORED_BY_DEFAULT = frozenset({SIGCHLD, SIGURG, SIGWINCH, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU})
#: Default action "Core": the exit status has the core-dump bit (0x80) set.
CORE_BY_DEFAULT = frozenset(
    {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS}
)


def terminates(sig: int) -> bool:
    return sig not in IGNORED_BY_DEFAULT


def valid(sig: int) -> bool:
    return 0 <= sig <= NSIG
