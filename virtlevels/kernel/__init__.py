"""The simulated Linux-like kernel: processes, system calls, scheduler, VFS, namespaces, cgroups."""
