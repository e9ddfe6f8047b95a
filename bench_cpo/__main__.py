"""`python -m bench_cpo ...`: the same command as `ems scsp-bench ...`."""

import sys

from bench_cpo.cli import main

sys.exit(main())
