"""xmpp: the XMPP building block for Python.

A compiled streaming engine (:mod:`xmpp.xmlstream`), value types for
addresses, stanzas and streams, and, built on them, sessions, a multiplexer
and extensions.  See the README for the module map.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
