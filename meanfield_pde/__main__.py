"""``python -m meanfield_pde`` = the ``meanfield-pde`` command."""

import sys

from .cli import main

sys.exit(main())
