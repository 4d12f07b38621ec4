"""``net``: UDP ping-pong over the loopback interface between two processes of one network namespace.

The program opens the server's UDP socket and binds it to 127.0.0.1:``port`` *before* fork(2), so
no ping can arrive before anyone listens; the child echoes ``pings`` datagrams back to their
sender with recvfrom(2)/sendto(2) and exits; the parent sends ``pings`` datagrams of ``size``
bytes (each different) from its own socket, checks every echo byte for byte, then waits for
the child. Prints ``net: N UDP round trips of S bytes over 127.0.0.1``.

Needs an IPv4 stack with sockets in the process's network namespace (``needs={"net"}``): the
kernel's default loopback-only stack answers socket(2) with EAFNOSUPPORT (exit status 1); the
vnet plugin fills the seam (``virtlevels_vnet.plugin.install(kernel)``).
Exit status: 1 socket, 2 bind, 3 fork, 4 sendto, 5 recvfrom, 6 wrong echo, 7 child failed
(the child exits 8 on a failed recvfrom or sendto).
"""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.syscalls.net import AF_INET, SOCK_DGRAM
from virtlevels.workloads.asmlib import FORK, asciz, build_elf, exit_or_fail
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {
    "pings": IntParam(8, 1, 1_000_000, "round trips"),
    "size": IntParam(32, 1, 1024, "payload bytes per datagram"),
    "port": IntParam(7777, 1, 65535, "the echo server's UDP port"),
}
PRESETS = {"small": {}, "large": {"pings": 1000, "size": 512}}
LOOPBACK = 0x7F000001


def source(pings: int, size: int, port: int) -> str:
    # struct sockaddr_in: family (host order), port and address (network order), 8 zero bytes.
    port_be = ((port & 0xFF) << 8) | (port >> 8)
    return f"""
    .equ PINGS, {pings}
    .equ SIZE, {size}
_start:
    li    a0, {AF_INET}
    li    a1, {SOCK_DGRAM}
    li    a2, 0
    li    a7, SYS_socket
    ecall
    li    s11, 1
    bltz  a0, fail
    mv    s0, a0                       # the server's socket
    la    a1, server
    li    a2, 16
    li    a7, SYS_bind
    ecall
    li    s11, 2
    bnez  a0, fail
{FORK}
    li    s11, 3
    bltz  a0, fail
    beqz  a0, child
    mv    s1, a0                       # the child's pid

    li    a0, {AF_INET}                # the client's socket (bound on first send)
    li    a1, {SOCK_DGRAM}
    li    a2, 0
    li    a7, SYS_socket
    ecall
    li    s11, 1
    bltz  a0, fail
    mv    s2, a0
    li    s3, 0                        # ping number
1:  la    t0, txbuf                    # payload byte j of ping i: i + 7j (mod 256)
    li    t1, 0
    mv    t2, s3
2:  add   t3, t0, t1
    sb    t2, 0(t3)
    addi  t2, t2, 7
    addi  t1, t1, 1
    li    t4, SIZE
    bltu  t1, t4, 2b
    mv    a0, s2                       # sendto(cli, txbuf, SIZE, 0, &server, 16)
    la    a1, txbuf
    li    a2, SIZE
    li    a3, 0
    la    a4, server
    li    a5, 16
    li    a7, SYS_sendto
    ecall
    li    s11, 4
    li    t0, SIZE
    bne   a0, t0, fail
    mv    a0, s2                       # recvfrom(cli, rxbuf, 2048, 0, NULL, NULL)
    la    a1, rxbuf
    li    a2, 2048
    li    a3, 0
    li    a4, 0
    li    a5, 0
    li    a7, SYS_recvfrom
    ecall
    li    s11, 5
    li    t0, SIZE
    bne   a0, t0, fail
    la    t0, txbuf
    la    t1, rxbuf
    li    t2, SIZE
    li    s11, 6
3:  lbu   t3, 0(t0)
    lbu   t4, 0(t1)
    bne   t3, t4, fail
    addi  t0, t0, 1
    addi  t1, t1, 1
    addi  t2, t2, -1
    bnez  t2, 3b
    addi  s3, s3, 1
    li    t0, PINGS
    bltu  s3, t0, 1b

    mv    a0, s1                       # wait4(child, &status, 0, NULL): it must exit 0
    la    a1, status
    li    a2, 0
    li    a3, 0
    li    a7, SYS_wait4
    ecall
    li    s11, 7
    bne   a0, s1, fail
    lw    t0, status
    bnez  t0, fail

    la    a0, msg0
    call  vl_cat
    mv    a0, s3
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    li    a0, SIZE
    call  vl_dec
    la    a0, msg2
    call  vl_cat
    call  vl_flush
{exit_or_fail()}
child:                                 # echo PINGS datagrams back to their senders
    li    s3, 0
1:  li    t0, 16
    la    t1, peerlen
    sw    t0, 0(t1)
    mv    a0, s0                       # recvfrom(srv, rxbuf, 2048, 0, &peer, &peerlen)
    la    a1, rxbuf
    li    a2, 2048
    li    a3, 0
    la    a4, peer
    la    a5, peerlen
    li    a7, SYS_recvfrom
    ecall
    li    s11, 8
    bltz  a0, fail
    mv    a2, a0                       # sendto(srv, rxbuf, n, 0, &peer, 16)
    mv    s4, a0
    mv    a0, s0
    la    a1, rxbuf
    li    a3, 0
    la    a4, peer
    li    a5, 16
    li    a7, SYS_sendto
    ecall
    bne   a0, s4, fail
    addi  s3, s3, 1
    li    t0, PINGS
    bltu  s3, t0, 1b
    li    a0, 0
    li    a7, SYS_exit
    ecall

    .rodata
    .balign 4
server: .half {AF_INET}
        .half {port_be}
        .word {int.from_bytes(LOOPBACK.to_bytes(4, "big"), "little")}
        .word 0, 0
{asciz("msg0", "net: ")}
{asciz("msg1", " UDP round trips of ")}
{asciz("msg2", " bytes over 127.0.0.1" + chr(10))}
    .bss
    .balign 4
status:  .space 4
peerlen: .space 4
peer:    .space 16
txbuf:   .space 2048
rxbuf:   .space 2048
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("net", PARAMS, params, PRESETS)
    return WorkloadImage(
        name="net", elf=build_elf("net", source(p["pings"], p["size"], p["port"])), argv=("/bin/net",),
        files={},
        expected_stdout=f"net: {p['pings']} UDP round trips of {p['size']} bytes over 127.0.0.1\n".encode(),
        needs=frozenset({"net", "fork"}), params=p,
    )  # fmt: skip
