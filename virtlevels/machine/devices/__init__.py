"""MMIO devices of the simulated machine: UART, block device, NIC, HTIF, test finisher, PLIC.

Each device implements the bus's ``MmioDevice`` protocol (``name``, ``size``, ``read``, ``write``,
``reset``, ``snapshot``, ``restore``, ``attach``); the machine maps it at the address given in
``virtlevels.machine.memmap`` and hands it a ``DeviceHost``. docs/machine-devices.md has the
register maps.
"""

from __future__ import annotations

from virtlevels.machine.devices.block import BlockDevice
from virtlevels.machine.devices.dma import DmaFault, DmaHost
from virtlevels.machine.devices.finisher import TestFinisher
from virtlevels.machine.devices.htif import Htif
from virtlevels.machine.devices.nic import Nic
from virtlevels.machine.devices.plic import Plic
from virtlevels.machine.devices.uart import Uart16550

__all__ = ["BlockDevice", "DmaFault", "DmaHost", "Htif", "Nic", "Plic", "TestFinisher", "Uart16550"]
