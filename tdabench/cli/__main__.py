"""``python -m tdabench.cli``: the same as the ``tdabench`` console script."""

import sys

from tdabench.cli import main

sys.exit(main())
