"""`python -m ems.cli` runs the `ems` command (tests and the demo start the server this way)."""

from ems.cli.main import main

main()
