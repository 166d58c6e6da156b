"""``python -m trio_brod.cli``: the ``trio-brod`` command."""

import sys

from trio_brod.cli import main

sys.exit(main())
