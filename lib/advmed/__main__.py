"""``python -m advmed`` is ``python -m advmed.book`` (run / build the book)."""
import sys

from advmed.book.cli import main

sys.exit(main())
