"""`python -m mimicry.cli`: the same entry point as the `mimicry` script."""

import sys

from mimicry.cli import main

sys.exit(main())
