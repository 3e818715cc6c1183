"""`edgeclf.train(...)` and `edgeclf.export(...)` are functions *and* subpackages.

Python binds a subpackage onto its parent the moment it is imported, which would hide the API
function of the same name (`edgeclf.train` → the package, not callable). Making those packages
callable, forwarding to the function, keeps both spellings working in any import order.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(package: str, module: str, function: str) -> None:
    """Calling the module `package` calls `module.function`."""

    class _Package(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), function)(*args, **kwargs)

    sys.modules[package].__class__ = _Package
