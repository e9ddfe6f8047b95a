"""The `ems` command line: one module per command group, wired together in `ems.cli.main`."""
