"""A small RV32 guest kernel that speaks Ethernet through the machine's ``vlnet`` NIC.

It is what a VM host of a :class:`~virtlevels_vnet.topo.Network` runs unless given another
image: an S-mode program booted behind the SBI firmware (as teachos is) that drives the NIC's
registers (docs/machine-devices.md "NIC") by polling:

- it answers ARP requests for its address (RFC 826) and ICMP echo requests to it (RFC 792:
  the request turned around in place, the checksum adjusted incrementally per RFC 1624);
- with ``peer`` and ``count`` it also pings: an ARP request for the peer, then ``count`` echo
  requests, one at a time, each answered before the next goes; it prints a line per reply on
  the UART and shuts down with SBI SRST (SBI 2.0 ch. 10): reason 0 after the last reply, or
  ``0xE000_0002`` (exit code 2) when ``timeout_ticks`` of ``time`` pass without the answer it
  waits for.

The frames it sends are laid out here in Python (the project's frame encoders compute the
checksums); the guest fills in only what it learns on the wire (the peer's MAC). Between polls
it executes ``wfi``, which the VMM may end at any time (Priv 3.3.3: "an implementation is free
to ... resume execution for any reason"): a VM host wakes it when a frame reaches its NIC.
"""

from __future__ import annotations

from virtlevels.errors import ConfigError
from virtlevels.guests.builder import build_firmware
from virtlevels.guests.layout import KERNEL_BASE, TIMEBASE_HZ
from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image
from virtlevels.machine.memmap import NIC_BASE, UART_BASE
from virtlevels_vnet.frames import arp as arpf
from virtlevels_vnet.frames import eth as ethf
from virtlevels_vnet.frames import icmp as icmpf
from virtlevels_vnet.frames import ipv4 as ipf

BROADCAST = b"\xff" * 6
ECHO_IDENT = 0x564C  # "VL"
ECHO_PAYLOAD = b"virtlevels-vm-ping"
RX_SIZE = 1536

_SOURCE = r"""
    .equ NIC, {nic}
    .equ UART, {uart}
    .equ COUNT, {count}
    .equ ECHO_LEN, {echo_len}
    .equ ARP_LEN, 42
    .equ RX_SIZE, {rx_size}
    .equ TIMEOUT, {timeout}
    .equ SBI_SRST, 0x53525354
    .text
    .globl _start
_start:
    la    sp, stack_top
    li    s0, NIC
    la    s4, rxbuf
    la    s5, echo_reqs         # the echo request in flight
    li    s2, 0                 # replies seen
    call  post
    li    s1, 2                 # state 2: only answer
    li    t0, COUNT
    beqz  t0, main
    li    s1, 0                 # state 0: resolving the peer's MAC
    la    a0, msg_start
    call  puts
    la    a0, arp_req
    li    a1, ARP_LEN
    call  send
    call  arm_deadline
main:
    lw    t0, 0x14(s0)          # INT_STATUS
    andi  t0, t0, 2             # RX_DONE
    bnez  t0, rx
    li    t0, 2
    beq   s1, t0, idle          # answering only: no deadline
    rdtime t0
    sub   t0, t0, s3
    bgez  t0, timeout           # time - deadline >= 0 (wrap-safe)
idle:
    wfi                         # the VMM wakes us when a frame arrives (or whenever it likes)
    j     main
rx:
    li    t0, 2
    sw    t0, 0x18(s0)          # INT_ACK RX_DONE
    call  handle
    call  post
    j     main

# -- one received frame in rxbuf ---------------------------------------------------------------
handle:
    addi  sp, sp, -16
    sw    ra, 12(sp)
    lw    s7, 0x3C(s0)          # RX_LEN
    lbu   t0, 12(s4)            # EtherType
    lbu   t1, 13(s4)
    li    t2, 8
    bne   t0, t2, hret
    li    t2, 6
    beq   t1, t2, h_arp
    bnez  t1, hret
    lbu   t0, 23(s4)            # IPv4 protocol
    li    t2, 1                 # ICMP
    bne   t0, t2, hret
    addi  a0, s4, 30            # destination address
    la    a1, my_ip
    li    a2, 4
    call  memeq
    beqz  a0, hret
    lbu   t0, 34(s4)            # ICMP type
    li    t2, 8
    beq   t0, t2, h_echo_req
    bnez  t0, hret
    li    t2, 1                 # an echo reply: is it the one we wait for?
    bne   s1, t2, hret
    addi  a0, s4, 26
    la    a1, peer_ip
    li    a2, 4
    call  memeq
    beqz  a0, hret
    addi  a0, s4, 38            # identifier and sequence number
    addi  a1, s5, 38
    li    a2, 4
    call  memeq
    beqz  a0, hret
    la    a0, msg_reply
    call  puts
    lbu   a0, 41(s4)
    addi  a0, a0, '0'
    call  putc
    li    a0, '\n'
    call  putc
    addi  s2, s2, 1
    li    t0, COUNT
    bgeu  s2, t0, finish
    addi  s5, s5, ECHO_LEN
    call  send_echo
    j     hret
h_echo_req:                     # answer in place: swap the addresses, type 0
    mv    a0, s4
    addi  a1, s4, 6
    li    a2, 6
    call  memcpy
    addi  a0, s4, 6
    la    a1, my_mac
    li    a2, 6
    call  memcpy
    addi  a0, s4, 30
    addi  a1, s4, 26
    li    a2, 4
    call  memcpy
    addi  a0, s4, 26
    la    a1, my_ip
    li    a2, 4
    call  memcpy
    sb    zero, 34(s4)
    lbu   t0, 36(s4)            # RFC 1624: the type word fell by 0x0800, the checksum rises by it
    lbu   t1, 37(s4)
    slli  t0, t0, 8
    or    t0, t0, t1
    li    t1, 0x800
    add   t0, t0, t1
    srli  t1, t0, 16
    add   t0, t0, t1
    srli  t1, t0, 8
    sb    t1, 36(s4)
    sb    t0, 37(s4)
    mv    a0, s4
    mv    a1, s7
    call  send
    j     hret
h_arp:
    lbu   t0, 21(s4)            # operation (low byte)
    li    t2, 1
    beq   t0, t2, h_arp_req
    li    t2, 2
    bne   t0, t2, hret
    bnez  s1, hret              # a reply matters only while resolving
    addi  a0, s4, 28            # sender protocol address
    la    a1, peer_ip
    li    a2, 4
    call  memeq
    beqz  a0, hret
    la    a0, peer_mac
    addi  a1, s4, 22            # sender hardware address
    li    a2, 6
    call  memcpy
    la    a0, msg_arp
    call  puts
    li    s1, 1                 # state 1: an echo request in flight
    call  send_echo
    j     hret
h_arp_req:
    addi  a0, s4, 38            # target protocol address
    la    a1, my_ip
    li    a2, 4
    call  memeq
    beqz  a0, hret
    la    s8, arp_rep
    mv    a0, s8                # to the asker
    addi  a1, s4, 22
    li    a2, 6
    call  memcpy
    addi  a0, s8, 32            # target hardware address
    addi  a1, s4, 22
    li    a2, 6
    call  memcpy
    addi  a0, s8, 38            # target protocol address
    addi  a1, s4, 28
    li    a2, 4
    call  memcpy
    mv    a0, s8
    li    a1, ARP_LEN
    call  send
hret:
    lw    ra, 12(sp)
    addi  sp, sp, 16
    ret

send_echo:                      # s5: the request; its destination is the peer's MAC
    addi  sp, sp, -16
    sw    ra, 12(sp)
    mv    a0, s5
    la    a1, peer_mac
    li    a2, 6
    call  memcpy
    mv    a0, s5
    li    a1, ECHO_LEN
    call  send
    call  arm_deadline
    lw    ra, 12(sp)
    addi  sp, sp, 16
    ret

arm_deadline:
    rdtime t0
    li    t1, TIMEOUT
    add   s3, t0, t1
    ret

finish:
    la    a0, msg_done
    call  puts
    li    a1, 0                 # SRST reason: none (pass)
    j     shutdown
timeout:
    la    a0, msg_timeout
    call  puts
    li    a1, 0xE0000002        # the firmware's convention: fail with exit code 2
shutdown:
    li    a7, SBI_SRST
    li    a6, 0
    li    a0, 0                 # shutdown
    ecall
1:  j     1b

# -- helpers -----------------------------------------------------------------------------------
post:                           # post rxbuf as the receive buffer
    sw    s4, 0x30(s0)
    li    t0, RX_SIZE
    sw    t0, 0x34(s0)
    sw    t0, 0x38(s0)
    ret
send:                           # a0 frame, a1 length
    sw    a0, 0x20(s0)
    sw    a1, 0x24(s0)
    sw    a1, 0x28(s0)
    ret
puts:
    li    t0, UART
1:  lbu   t1, 0(a0)
    beqz  t1, 2f
    sb    t1, 0(t0)
    addi  a0, a0, 1
    j     1b
2:  ret
putc:
    li    t0, UART
    sb    a0, 0(t0)
    ret
memcpy:                         # a0 dst, a1 src, a2 n
1:  beqz  a2, 2f
    lbu   t0, 0(a1)
    sb    t0, 0(a0)
    addi  a0, a0, 1
    addi  a1, a1, 1
    addi  a2, a2, -1
    j     1b
2:  ret
memeq:                          # a0, a1, a2 n -> a0 = 1 if equal
1:  beqz  a2, 3f
    lbu   t0, 0(a0)
    lbu   t1, 0(a1)
    bne   t0, t1, 2f
    addi  a0, a0, 1
    addi  a1, a1, 1
    addi  a2, a2, -1
    j     1b
2:  li    a0, 0
    ret
3:  li    a0, 1
    ret

    .rodata
msg_start:   .asciz "vm: ping {peer_text}\n"
msg_arp:     .asciz "vm: arp reply\n"
msg_reply:   .asciz "vm: echo reply seq="
msg_done:    .asciz "vm: done\n"
msg_timeout: .asciz "vm: timeout\n"
    .data
my_mac:   .byte {my_mac}
my_ip:    .byte {my_ip}
peer_ip:  .byte {peer_ip}
peer_mac: .byte 0, 0, 0, 0, 0, 0
arp_req:  .byte {arp_req}
arp_rep:  .byte {arp_rep}
    .balign 4
echo_reqs:
{echo_reqs}
    .bss
    .balign 16
rxbuf:    .space RX_SIZE
stack:    .space 1024
stack_top:
"""


def _bytes(data: bytes) -> str:
    return ", ".join(str(b) for b in data)


def echo_frame(mac: bytes, ip: int, peer_ip: int, seq: int) -> bytes:
    """The guest's echo request ``seq`` to ``peer_ip``, destination MAC left zero."""
    msg = icmpf.echo(ECHO_IDENT, seq, ECHO_PAYLOAD)
    pkt = ipf.build(ip, peer_ip, ipf.IPPROTO_ICMP, msg, ident=seq)
    return ethf.build(bytes(6), mac, 0x0800, pkt)


def nic_guest(
    mac: bytes,
    ip: str,
    *,
    peer: str | None = None,
    count: int = 0,
    timeout_ticks: int = TIMEBASE_HZ,
) -> Image:
    """Firmware + the NIC guest for a VM whose NIC has ``mac`` and whose address is ``ip``
    ("10.0.0.5" or "10.0.0.5/24"). With ``peer`` and ``count`` (1-9) it pings ``peer`` and
    shuts down; without, it answers ARP and ping forever."""
    if len(mac) != 6:
        raise ConfigError(f"NIC guest: mac must be 6 bytes, got {mac.hex(':')!r}")
    try:
        my_ip = ipf.parse_cidr(ip if "/" in ip else ip + "/32")[0]
        peer_ip = ipf.parse_cidr(peer if "/" in peer else peer + "/32")[0] if peer else 0
    except ipf.FrameError as e:
        raise ConfigError(f"NIC guest: {e}") from None
    if peer is None:
        count = 0
    elif not 1 <= count <= 9:
        raise ConfigError(f"NIC guest: count must be 1-9 (one digit per reply line), got {count}")
    if timeout_ticks <= 0 or timeout_ticks >= 1 << 31:
        raise ConfigError(f"NIC guest: timeout_ticks {timeout_ticks} is not in 1..2^31-1")
    arp_req = ethf.build(
        BROADCAST, mac, 0x0806, arpf.build(arpf.ARPOP_REQUEST, mac, my_ip, bytes(6), peer_ip)
    )
    arp_rep = ethf.build(bytes(6), mac, 0x0806, arpf.build(arpf.ARPOP_REPLY, mac, my_ip, bytes(6), 0))
    echoes = [echo_frame(mac, my_ip, peer_ip, seq) for seq in range(1, max(count, 1) + 1)]
    source = _SOURCE.format(
        nic=NIC_BASE,
        uart=UART_BASE,
        count=count,
        echo_len=len(echoes[0]),
        rx_size=RX_SIZE,
        timeout=timeout_ticks,
        peer_text=ipf.ntoa(peer_ip) if peer else "-",
        my_mac=_bytes(mac),
        my_ip=_bytes(my_ip.to_bytes(4, "big")),
        peer_ip=_bytes(peer_ip.to_bytes(4, "big")),
        arp_req=_bytes(arp_req),
        arp_rep=_bytes(arp_rep),
        echo_reqs="\n".join(f"    .byte {_bytes(f)}" for f in echoes),
    )
    fw = build_firmware()
    kernel = assemble(source, "vnet-nic-guest.S", base=KERNEL_BASE)
    return Image(
        fw.segments + kernel.segments, fw.entry, {**fw.symbols, **kernel.symbols}, source="vnet-nic-guest"
    )


__all__ = ["ECHO_IDENT", "ECHO_PAYLOAD", "echo_frame", "nic_guest"]
