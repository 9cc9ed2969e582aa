"""``python -m advmed.book``: see :mod:`advmed.book.cli`."""
import sys

from .cli import main

sys.exit(main())
