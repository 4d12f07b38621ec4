"""The hypervisor plugin (issue 5): virtual machines on the shared simulated machine.

A :class:`~virtlevels_hypervisor.vm.VirtualMachine` is a Machine; a
:class:`~virtlevels_hypervisor.hypervisor.Hypervisor` (native) or
:class:`~virtlevels_hypervisor.hosted.HostedHypervisor` (a process of the simulated kernel) makes
them; :mod:`.techniques` runs them by full emulation, trap-and-emulate, binary translation,
paravirtualization or the H extension. See docs/hypervisor.md.
"""
