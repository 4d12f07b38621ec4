"""The hypervisor plugin (issue 5): virtual machines on the shared simulated machine.

First slice: :mod:`.hwassist`, a hardware-assisted (H extension), native (Type 1) VM monitor
written in Python that owns a ``PhysicalMachine(hypervisor=True)`` and runs teachos in VS-mode.
Not registered as a backend yet: the lead registers the plugin once the techniques exist.
"""
