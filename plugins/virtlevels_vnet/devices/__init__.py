"""Kernel network devices: loopback, veth, bridge, VLAN, TUN/TAP, VXLAN."""

from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.devices.bridge import Bridge
from virtlevels_vnet.devices.loopback import Loopback
from virtlevels_vnet.devices.tuntap import TapDev, TunDev
from virtlevels_vnet.devices.veth import Veth, veth_pair
from virtlevels_vnet.devices.vlan import VlanDev
from virtlevels_vnet.devices.vxlan import VxlanDev

__all__ = ["Bridge", "Loopback", "NetDev", "TapDev", "TunDev", "Veth", "VlanDev", "VxlanDev", "veth_pair"]
