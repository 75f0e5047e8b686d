"""``python -m chaoskit`` is the ``chaoskit`` command."""

import sys

from chaoskit.cli import main

sys.exit(main())
