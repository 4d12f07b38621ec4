"""Linux namespaces, all eight (namespaces(7)): mechanism for the kernel core and the containers plugin.

Each type lives in its own module; :mod:`.proxy` holds the set a task points to and the
clone/unshare/setns logic. Names re-exported here are the public API.
"""

from virtlevels.kernel.ns.cgroupns import CgroupNamespace, relative_cgroup_path
from virtlevels.kernel.ns.common import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_NS_FLAGS,
    NS_TYPE_BY_FLAG,
    NS_TYPES,
    Namespace,
    NsContext,
    NsType,
)
from virtlevels.kernel.ns.ipc import IpcNamespace, MsqidDs
from virtlevels.kernel.ns.mnt import MntNamespace
from virtlevels.kernel.ns.net import InterfaceInfo, LoopbackStack, NetNamespace, NetworkStack
from virtlevels.kernel.ns.pid import Pid, PidNamespace, free_pid, init_exited, orphan_reaper, reaper_for
from virtlevels.kernel.ns.proxy import NsProxy, copy_namespaces, create_initial, setns, unshare_namespaces
from virtlevels.kernel.ns.time import TimeNamespace
from virtlevels.kernel.ns.user import UserNamespace, create_user_ns, creds_for_new_user_ns, has_cap
from virtlevels.kernel.ns.uts import UtsNamespace

__all__ = [
    "CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWTIME",
    "CLONE_NEWUSER", "CLONE_NEWUTS", "CLONE_NS_FLAGS", "NS_TYPES", "NS_TYPE_BY_FLAG", "CgroupNamespace",
    "InterfaceInfo", "IpcNamespace", "LoopbackStack", "MntNamespace", "MsqidDs", "Namespace", "NetNamespace",
    "NetworkStack", "NsContext", "NsProxy", "NsType", "Pid", "PidNamespace", "TimeNamespace",
    "UserNamespace", "UtsNamespace", "copy_namespaces", "create_initial", "create_user_ns",
    "creds_for_new_user_ns", "free_pid", "has_cap", "init_exited", "orphan_reaper", "reaper_for",
    "relative_cgroup_path", "setns", "unshare_namespaces",
]  # fmt: skip
