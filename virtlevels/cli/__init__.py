"""The ``virtlevels`` command line (argparse; subcommands come from the plugin registry)."""
