"""Package data: the OCI runtime-spec JSON schemas (Apache-2.0, see NOTICE and LICENSE here).

A package only so that setuptools' ``"*" = ["*.json", "LICENSE*", "NOTICE*"]`` package-data
patterns pick these files up and ``importlib.resources`` finds them in an installed wheel.
"""
