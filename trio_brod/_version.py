"""The version of trio-brod, in a module of its own.

Modules inside the package import it from here, not from :mod:`trio_brod`: importing the
package from one of its own modules would make that module depend on everything the
package imports (an import cycle). Keep it equal to ``version`` in ``pyproject.toml``.
"""

from __future__ import annotations

__all__ = ["__version__"]

#: The version of this trio-brod (PEP 440).
__version__ = "0.1.0.dev0"
