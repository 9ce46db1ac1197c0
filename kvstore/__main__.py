"""``python -m kvstore URL get|put|ls|rm|watch|watch-tree ...``: the operator's command (:mod:`kvstore.cli`)."""

import sys

from .cli import main

sys.exit(main())
