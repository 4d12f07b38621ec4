"""The 16550 UART: transmit capture, receive FIFO, LSR bits, interrupts, loopback, snapshots."""

from __future__ import annotations

import io

from virtlevels.machine.devices.uart import (
    FCR_CLEAR_RX,
    FCR_FE,
    IER_DLM,
    IER_EDSSI,
    IER_ERBFI,
    IER_ETBEI,
    IIR_CTI,
    IIR_FCR,
    IIR_MSI,
    IIR_NONE,
    IIR_RDI,
    IIR_THRI,
    LCR,
    LSR,
    LSR_DR,
    LSR_TEMT,
    LSR_THRE,
    MCR,
    MSR,
    RBR_THR_DLL,
    SCR,
    Uart16550,
)

IRQ = 10


def make(host, **kw) -> Uart16550:
    uart = Uart16550(**kw)
    uart.attach(host)
    return uart


def send(uart: Uart16550, text: bytes) -> None:
    for b in text:
        uart.write(RBR_THR_DLL, 1, b)


def test_transmit_is_captured_and_echoed(host):
    echoed: list[bytes] = []
    uart = make(host, echo=echoed.append)
    send(uart, b"hi\n")
    assert uart.output == b"hi\n"
    assert b"".join(echoed) == b"hi\n"
    assert uart.read(LSR, 1) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT


def test_divisor_latch_redirects_offsets_0_and_1(host):
    uart = make(host)
    uart.write(LCR, 1, 0x83)  # DLAB + 8N1
    uart.write(RBR_THR_DLL, 1, 0x01)
    uart.write(IER_DLM, 1, 0x02)
    assert uart.output == b""  # the byte went to DLL, not the transmitter
    assert uart.read(RBR_THR_DLL, 1) == 0x01
    assert uart.read(IER_DLM, 1) == 0x02
    uart.write(LCR, 1, 0x03)
    assert uart.read(IER_DLM, 1) == 0  # IER untouched by the DLM write
    assert uart.read(LCR, 1) == 0x03


def test_received_bytes_come_out_in_order_and_clear_dr(host):
    uart = make(host)
    assert uart.read(LSR, 1) & LSR_DR == 0
    uart.feed(b"ab")
    assert uart.read(LSR, 1) & LSR_DR
    assert uart.read(RBR_THR_DLL, 1) == ord("a")
    assert uart.read(LSR, 1) & LSR_DR
    assert uart.read(RBR_THR_DLL, 1) == ord("b")
    assert uart.read(LSR, 1) & LSR_DR == 0
    assert uart.read(RBR_THR_DLL, 1) == 0


def test_receive_interrupt_follows_data_when_enabled(host):
    uart = make(host)
    uart.feed(b"x")
    assert host.levels.get(IRQ) is None  # IER disabled: no interrupt
    uart.write(IER_DLM, 1, IER_ERBFI)
    assert host.levels[IRQ] is True
    assert uart.read(IIR_FCR, 1) == IIR_RDI
    uart.read(RBR_THR_DLL, 1)
    assert host.levels[IRQ] is False
    assert uart.read(IIR_FCR, 1) == IIR_NONE


def test_thr_empty_interrupt_is_cleared_by_reading_iir_and_rearmed_by_a_write(host):
    uart = make(host)
    uart.write(IER_DLM, 1, IER_ETBEI)
    assert host.levels[IRQ] is True  # THR is empty when ETBEI is enabled
    assert uart.read(IIR_FCR, 1) == IIR_THRI
    assert host.levels[IRQ] is False
    assert uart.read(IIR_FCR, 1) == IIR_NONE
    uart.write(RBR_THR_DLL, 1, ord("z"))
    assert host.levels[IRQ] is True
    uart.write(IER_DLM, 1, 0)
    assert host.levels[IRQ] is False


def test_receive_interrupt_outranks_thr_empty(host):
    uart = make(host)
    uart.write(IER_DLM, 1, IER_ERBFI | IER_ETBEI)
    uart.feed(b"q")
    assert uart.read(IIR_FCR, 1) == IIR_RDI
    uart.read(RBR_THR_DLL, 1)
    assert uart.read(IIR_FCR, 1) == IIR_THRI


def test_fifo_trigger_level_and_timeout_identification(host):
    uart = make(host)
    uart.write(IIR_FCR, 1, FCR_FE | 0x40)  # FIFO on, trigger level 4
    uart.write(IER_DLM, 1, IER_ERBFI)
    uart.feed(b"12")
    assert uart.read(IIR_FCR, 1) == 0xC0 | IIR_CTI  # below the trigger: character timeout
    uart.feed(b"34")
    assert uart.read(IIR_FCR, 1) == 0xC0 | IIR_RDI
    uart.write(IIR_FCR, 1, FCR_FE | FCR_CLEAR_RX)
    assert uart.read(LSR, 1) & LSR_DR == 0
    assert host.levels[IRQ] is False


def test_loopback_routes_transmit_to_receive_and_drives_msr(host):
    uart = make(host)
    uart.write(IER_DLM, 1, IER_EDSSI)
    uart.write(MCR, 1, 0x10)  # loopback, all outputs low
    uart.read(MSR, 1)  # clear the deltas from leaving the default state
    assert uart.read(MSR, 1) & 0xF0 == 0
    uart.write(MCR, 1, 0x1F)  # DTR RTS OUT1 OUT2 + loopback
    assert host.levels[IRQ] is True
    assert uart.read(IIR_FCR, 1) == IIR_MSI
    msr = uart.read(MSR, 1)
    assert msr & 0xF0 == 0xF0  # DCD RI DSR CTS
    assert msr & 0x0F == 0x0B  # DDCD DDSR DCTS; TERI only on a falling RI
    assert uart.read(MSR, 1) & 0x0F == 0  # reading cleared the deltas
    assert host.levels[IRQ] is False
    uart.write(MCR, 1, 0x1B)  # drop OUT1: RI trailing edge
    assert uart.read(MSR, 1) & 0x04
    send(uart, b"L")
    assert uart.output == b""
    assert uart.read(RBR_THR_DLL, 1) == ord("L")


def test_input_stream_is_read_when_the_receiver_is_polled(host):
    uart = make(host, input_stream=io.BytesIO(b"in"))
    assert uart.read(LSR, 1) & LSR_DR
    assert uart.read(RBR_THR_DLL, 1) == ord("i")
    assert uart.read(RBR_THR_DLL, 1) == ord("n")
    assert uart.read(LSR, 1) & LSR_DR == 0


def test_poll_input_raises_the_receive_interrupt(host):
    uart = make(host, input_stream=io.BytesIO(b"k"))
    uart.write(IER_DLM, 1, IER_ERBFI)
    assert host.levels.get(IRQ) is None
    uart.poll_input()
    assert host.levels[IRQ] is True


def test_scratch_register_and_wide_accesses(host):
    uart = make(host)
    uart.write(SCR, 4, 0x1234_56A5)
    assert uart.read(SCR, 1) == 0xA5
    assert uart.read(LSR, 4) == LSR_THRE | LSR_TEMT
    assert uart.read(0x40, 4) == 0


def test_emit_adds_console_bytes_without_touching_registers(host):
    echoed: list[bytes] = []
    uart = make(host, echo=echoed.append)
    uart.emit(b"htif")
    assert uart.output == b"htif" and echoed == [b"htif"]
    assert host.irq_log == []


def test_reset_restores_register_defaults_but_keeps_output(host):
    uart = make(host)
    send(uart, b"x")
    uart.write(LCR, 1, 0x1B)
    uart.write(IER_DLM, 1, IER_ERBFI)
    uart.feed(b"pending")
    uart.reset()
    assert uart.read(LCR, 1) == 0 and uart.read(IER_DLM, 1) == 0
    assert uart.read(LSR, 1) == LSR_THRE | LSR_TEMT
    assert uart.read(MCR, 1) == 0x08
    assert host.levels[IRQ] is False
    assert uart.output == b"x"


def test_snapshot_round_trip_continues_identically(host):
    uart = make(host)
    uart.write(IIR_FCR, 1, FCR_FE)
    uart.write(IER_DLM, 1, IER_ERBFI | IER_ETBEI)
    send(uart, b"abc")
    uart.feed(b"xyz")
    uart.read(RBR_THR_DLL, 1)
    state = uart.snapshot()
    clone = make(type(host)())
    clone.restore(state)
    assert clone.snapshot() == state
    for dev in (uart, clone):
        send(dev, b"!")
        dev.feed(b"1")
    reads = [
        [dev.read(off, 1) for off in (IIR_FCR, LSR, RBR_THR_DLL, RBR_THR_DLL, RBR_THR_DLL, LSR)]
        for dev in (uart, clone)
    ]
    assert reads[0] == reads[1]
    assert reads[0][2:5] == [ord("y"), ord("z"), ord("1")]
    assert uart.snapshot() == clone.snapshot()
    assert clone.output == b"abc!"
