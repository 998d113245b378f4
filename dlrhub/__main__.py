"""`python -m dlrhub` is the `dlrhub` command."""

import sys

from dlrhub.cli import main

sys.exit(main())
