"""Binary translation of guest kernel code (VMware's classic technique): translator, cache, monitor."""
