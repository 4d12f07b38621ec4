"""The containers plugin: an OCI runtime (runc's contract, ``config.json``) on the kernel's
namespaces and cgroup v2.

- :mod:`.oci`: the configuration edge (schema validation, support report, typed spec, bundles, state).
- :mod:`.runtime` and :mod:`.init`: the runtime; every step is a system call of a scripted process.
- :mod:`.image`, :mod:`.busybox`, :mod:`.engine`: images, the built-in busybox, the docker-like engine.
- :mod:`.backend`, :mod:`.cli`, :mod:`.plugin`: the backend, the ``runc``/``container`` commands, the hooks.
"""
