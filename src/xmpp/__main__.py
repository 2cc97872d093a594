"""``python -m xmpp``: see :mod:`xmpp.cli` (``python -m xmpp --help``)."""

from __future__ import annotations

import sys

from xmpp.cli import main

if __name__ == "__main__":
    sys.exit(main())
