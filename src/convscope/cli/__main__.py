"""``python -m convscope.cli``: the ``convscope`` command."""

import sys

from . import main

sys.exit(main())
