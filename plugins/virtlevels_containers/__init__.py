"""The containers plugin: an OCI runtime (runc's contract, ``config.json``) on the kernel's
namespaces and cgroup v2.

For now it holds only the configuration edge, :mod:`virtlevels_containers.oci`: schema
validation, the runtime-support report, the typed spec, bundles and the OCI state and lifecycle.
The backend and its hooks are wired in once the kernel exists.
"""
