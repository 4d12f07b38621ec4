"""The service-level virtualization backend: virtual networks with real frames (the ``vnet`` plugin)."""
