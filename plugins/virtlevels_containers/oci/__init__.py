"""The OCI runtime-spec configuration edge of the containers plugin.

- :mod:`.validate`: config.json / state JSON against the shipped runtime-spec schemas.
- :mod:`.support`: which fields the runtime implements (a data table) and the report of the rest.
- :mod:`.spec`: the typed model of what the runtime implements, with the spec's semantic rules.
- :mod:`.bundle`: loading and checking bundles (config.json plus rootfs).
- :mod:`.state`: the OCI state document and the create/start/kill/delete state machine.
"""

from virtlevels_containers.oci.bundle import Bundle, Report, check_bundle, load_bundle
from virtlevels_containers.oci.spec import RuntimeSpec, load_spec
from virtlevels_containers.oci.state import ContainerLifecycle, State, Status
from virtlevels_containers.oci.support import SUPPORTED, Unsupported, unsupported_fields, unsupported_report
from virtlevels_containers.oci.validate import InvalidConfig, JsonParseError, validate_config, validate_state

__all__ = [
    "SUPPORTED",
    "Bundle",
    "ContainerLifecycle",
    "InvalidConfig",
    "JsonParseError",
    "Report",
    "RuntimeSpec",
    "State",
    "Status",
    "Unsupported",
    "check_bundle",
    "load_bundle",
    "load_spec",
    "unsupported_fields",
    "unsupported_report",
    "validate_config",
    "validate_state",
]
