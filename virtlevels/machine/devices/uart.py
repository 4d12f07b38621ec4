"""A 16550A-compatible UART, as on QEMU's virt machine (``ns16550a`` at 0x1000_0000, IRQ 10).

Register map (byte registers at offsets 0-7, regshift 0; TI PC16550D datasheet §8, QEMU
hw/char/serial.c semantics)::

    off  DLAB=0 read   DLAB=0 write   DLAB=1
    0    RBR           THR            DLL (divisor latch low)
    1    IER           IER            DLM (divisor latch high)
    2    IIR           FCR            (IIR / FCR)
    3    LCR (bit 7 = DLAB)
    4    MCR (bit 4 = loopback)
    5    LSR: DR(0) OE(1) PE(2) FE(3) BI(4) THRE(5) TEMT(6) RXFE(7)   (writes ignored)
    6    MSR: DCTS(0) DDSR(1) TERI(2) DDCD(3) CTS(4) DSR(5) RI(6) DCD(7) (writes ignored)
    7    SCR (scratch)

    IER: ERBFI(0) received data, ETBEI(1) THR empty, ELSI(2) line status, EDSSI(3) modem status
    IIR: 0x01 none, 0x06 line status, 0x04 RX data, 0x0C RX timeout, 0x02 THR empty, 0x00 modem
         status; bits 7:6 = 11 when the FIFOs are enabled.
    FCR: FIFO enable(0), clear RX(1), clear TX(2), RX trigger level(7:6) = 1, 4, 8, 14 bytes.

Modelling choices (deterministic, documented):

* Transmission is instantaneous: a THR write appends the byte to :attr:`output` (and calls the
  ``echo`` callable), after which THRE and TEMT are set again and the THR-empty interrupt becomes
  pending (as QEMU does once its transmit timer fires). The divisor latch is stored but has no
  effect on timing.
* Input comes from :meth:`feed` (bytes) or an optional ``input_stream`` read lazily when the guest
  polls an empty receiver (or when the machine calls :meth:`poll_input`). The receive FIFO is
  16 bytes deep; bytes that do not fit wait on the "line" as if RTS/CTS flow control held them
  back, so input is never lost and OE/PE/FE/BI are never set.
* The character-timeout interrupt (IIR 0x0C) is pending as soon as the FIFO holds fewer bytes
  than the trigger level: there is no wall-clock, so "four character times" is zero.
* Accesses wider than one byte act on the register at the offset (value's low byte); reads
  return it zero-extended. Offsets 8 and up read as 0.
* :meth:`reset` restores the registers and empties the FIFO; :attr:`output` is console history and
  survives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from virtlevels.machine.memmap import UART_IRQ, UART_SIZE

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

# Register offsets and bits (PC16550D §8.4-8.10).
RBR_THR_DLL, IER_DLM, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)

IER_ERBFI, IER_ETBEI, IER_ELSI, IER_EDSSI = 0x01, 0x02, 0x04, 0x08
IIR_NONE, IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_CTI = 0x01, 0x00, 0x02, 0x04, 0x06, 0x0C
IIR_FIFO_ENABLED = 0xC0
FCR_FE, FCR_CLEAR_RX, FCR_CLEAR_TX = 0x01, 0x02, 0x04
LCR_DLAB = 0x80
MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, MCR_LOOP = 0x01, 0x02, 0x04, 0x08, 0x10
LSR_DR, LSR_OE, LSR_PE, LSR_FE, LSR_BI, LSR_THRE, LSR_TEMT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
MSR_DCTS, MSR_DDSR, MSR_TERI, MSR_DDCD = 0x01, 0x02, 0x04, 0x08
MSR_CTS, MSR_DSR, MSR_RI, MSR_DCD = 0x10, 0x20, 0x40, 0x80
MSR_DELTAS = 0x0F

FIFO_DEPTH = 16
RX_TRIGGER_LEVELS = (1, 4, 8, 14)  # FCR[7:6] (PC16550D Table IV)
RESET_MSR = MSR_DCD | MSR_DSR | MSR_CTS  # a connected terminal, as QEMU reports without loopback
RESET_MCR = MCR_OUT2  # QEMU's reset value
RESET_DIVISOR = 0x0C  # 9600 baud from a 1.8432 MHz clock; QEMU's reset value


@attrs.define(eq=False)
class Uart16550:
    """A 16550A UART; ``output`` holds every transmitted byte."""

    name: str = "uart0"
    irq: int = UART_IRQ
    echo: Callable[[bytes], object] | None = None
    input_stream: BinaryIO | None = None
    size: int = UART_SIZE

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    _out: bytearray = attrs.field(factory=bytearray, init=False)
    _rx: deque[int] = attrs.field(factory=deque, init=False)
    _input_eof: bool = attrs.field(default=False, init=False)
    _ier: int = attrs.field(default=0, init=False)
    _fcr: int = attrs.field(default=0, init=False)
    _lcr: int = attrs.field(default=0, init=False)
    _mcr: int = attrs.field(default=RESET_MCR, init=False)
    _msr: int = attrs.field(default=RESET_MSR, init=False)
    _scr: int = attrs.field(default=0, init=False)
    _divisor: int = attrs.field(default=RESET_DIVISOR, init=False)
    _thr: int = attrs.field(default=0, init=False)
    _thr_ipending: bool = attrs.field(default=False, init=False)
    _irq_level: bool = attrs.field(default=False, init=False)

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, host: DeviceHost) -> None:
        self._host = host

    @property
    def output(self) -> bytes:
        """Every byte the guest transmitted (and everything :meth:`emit` added)."""
        return bytes(self._out)

    @property
    def irq_level(self) -> bool:
        """The level of the UART's interrupt output."""
        return self._irq_level

    def feed(self, data: bytes) -> None:
        """Bytes arriving on the receive line, delivered in order."""
        self._rx.extend(data)
        self._update_irq()

    def poll_input(self) -> None:
        """Pull waiting bytes from ``input_stream`` (the machine calls this between quanta)."""
        if not self._rx:
            self._pull_input()
            self._update_irq()

    def emit(self, data: bytes) -> None:
        """Put bytes on the console without guest-visible register effects (an HTIF console sink)."""
        self._out += data
        if self.echo is not None:
            self.echo(bytes(data))

    # -- MMIO --------------------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        if offset == RBR_THR_DLL:
            if self._lcr & LCR_DLAB:
                return self._divisor & 0xFF
            if not self._rx:
                self._pull_input()
            value = self._rx.popleft() if self._rx else 0
            self._update_irq()
            return value
        if offset == IER_DLM:
            return (self._divisor >> 8) if self._lcr & LCR_DLAB else self._ier
        if offset == IIR_FCR:
            if not self._rx:
                self._pull_input()
            ident = self._identify()
            if ident == IIR_THRI:
                # PC16550D §8.5: reading IIR when it reports THR empty clears that interrupt.
                self._thr_ipending = False
                self._update_irq()
            return ident | (IIR_FIFO_ENABLED if self._fcr & FCR_FE else 0)
        if offset == LCR:
            return self._lcr
        if offset == MCR:
            return self._mcr
        if offset == LSR:
            if not self._rx:
                self._pull_input()
            return LSR_THRE | LSR_TEMT | (LSR_DR if self._rx else 0)
        if offset == MSR:
            value = self._msr
            # PC16550D §8.7: the delta bits are cleared when MSR is read.
            self._msr &= ~MSR_DELTAS
            self._update_irq()
            return value
        if offset == SCR:
            return self._scr
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        value &= 0xFF
        if offset == RBR_THR_DLL:
            if self._lcr & LCR_DLAB:
                self._divisor = (self._divisor & 0xFF00) | value
            else:
                self._transmit(value)
        elif offset == IER_DLM:
            if self._lcr & LCR_DLAB:
                self._divisor = (self._divisor & 0x00FF) | (value << 8)
                return
            changed = (self._ier ^ value) & IER_ETBEI
            self._ier = value & 0x0F
            if changed:
                # Enabling ETBEI while THR is empty raises the THR-empty interrupt at once
                # (PC16550D §8.6; QEMU serial_ioport_write).
                self._thr_ipending = bool(self._ier & IER_ETBEI)
            self._update_irq()
        elif offset == IIR_FCR:
            if (self._fcr ^ value) & FCR_FE or value & FCR_CLEAR_RX:
                # Changing the FIFO enable bit clears both FIFOs (PC16550D §8.6).
                self._rx.clear()
            self._fcr = value & 0xC9  # FE, DMA mode, trigger level; the clear bits self-reset
            self._update_irq()
        elif offset == LCR:
            self._lcr = value
        elif offset == MCR:
            self._set_mcr(value & 0x1F)
        elif offset == SCR:
            self._scr = value
        # LSR and MSR are read-only here (their writes are factory-test only).

    # -- behaviour ---------------------------------------------------------------------------
    def _transmit(self, byte: int) -> None:
        self._thr = byte
        if self._mcr & MCR_LOOP:
            self._rx.append(byte)  # PC16550D §8.8: loopback feeds the transmitter to the receiver
        else:
            self._out.append(byte)
            if self.echo is not None:
                self.echo(bytes((byte,)))
        self._thr_ipending = True  # transmitted at once: THR is empty again
        self._update_irq()

    def _set_mcr(self, value: int) -> None:
        self._mcr = value
        if value & MCR_LOOP:
            # Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (PC16550D §8.8).
            lines = (
                ((value & (MCR_OUT1 | MCR_OUT2)) << 4) | ((value & MCR_RTS) << 3) | ((value & MCR_DTR) << 5)
            )
        else:
            lines = RESET_MSR
        old = self._msr
        changed = (old ^ lines) & 0xF0
        deltas = (changed >> 4) & (MSR_DCTS | MSR_DDSR | MSR_DDCD)
        if old & MSR_RI and not lines & MSR_RI:
            deltas |= MSR_TERI  # trailing edge of RI only
        self._msr = lines | (old & MSR_DELTAS) | deltas
        self._update_irq()

    def _pull_input(self) -> None:
        stream = self.input_stream
        if stream is None or self._input_eof:
            return
        reader = getattr(stream, "read1", stream.read)
        data = reader(FIFO_DEPTH)
        if data:
            self._rx.extend(data)
        else:
            self._input_eof = True

    def _identify(self) -> int:
        """The highest-priority pending interrupt (PC16550D Table IV; QEMU serial_update_irq)."""
        ier = self._ier
        if ier & IER_ERBFI and self._rx:
            if not self._fcr & FCR_FE:
                return IIR_RDI
            level = min(len(self._rx), FIFO_DEPTH)
            return IIR_RDI if level >= RX_TRIGGER_LEVELS[self._fcr >> 6] else IIR_CTI
        if ier & IER_ETBEI and self._thr_ipending:
            return IIR_THRI
        if ier & IER_EDSSI and self._msr & MSR_DELTAS:
            return IIR_MSI
        return IIR_NONE

    def _update_irq(self) -> None:
        level = self._identify() != IIR_NONE
        if level != self._irq_level:
            self._irq_level = level
            host = self._host
            if host is not None:
                host.raise_irq(self.irq, level)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._rx.clear()
        self._ier = self._fcr = self._lcr = self._scr = self._thr = 0
        self._mcr, self._msr, self._divisor = RESET_MCR, RESET_MSR, RESET_DIVISOR
        self._thr_ipending = False
        self._update_irq()

    def snapshot(self) -> dict[str, Any]:
        return {
            "output": bytes(self._out),
            "rx": bytes(self._rx),
            "input_eof": self._input_eof,
            "ier": self._ier,
            "fcr": self._fcr,
            "lcr": self._lcr,
            "mcr": self._mcr,
            "msr": self._msr,
            "scr": self._scr,
            "divisor": self._divisor,
            "thr": self._thr,
            "thr_ipending": self._thr_ipending,
            "irq_level": self._irq_level,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot`. Pure data: the interrupt line is not re-driven (the PLIC's
        snapshot holds its own copy of the line level)."""
        self._out = bytearray(state["output"])
        self._rx = deque(state["rx"])
        self._input_eof = bool(state["input_eof"])
        self._ier = int(state["ier"])
        self._fcr = int(state["fcr"])
        self._lcr = int(state["lcr"])
        self._mcr = int(state["mcr"])
        self._msr = int(state["msr"])
        self._scr = int(state["scr"])
        self._divisor = int(state["divisor"])
        self._thr = int(state["thr"])
        self._thr_ipending = bool(state["thr_ipending"])
        self._irq_level = bool(state["irq_level"])
