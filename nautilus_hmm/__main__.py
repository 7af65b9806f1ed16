"""`python -m nautilus_hmm` = the `nautilus-hmm` command."""

import sys

from nautilus_hmm.cli import main

sys.exit(main())
