"""``install()``: let ``import panoply`` find the compatibility layer.

A finder on ``sys.meta_path`` answers for ``panoply`` only when no other finder
does (no real ``panoply`` package is importable), and then for ``panoply.<name>``
while ``sys.modules["panoply"]`` is this layer. Each ``panoply.<name>`` is the very
module ``panoply_async.compat.<name>``, never a second copy, so classes compare
equal whichever name imported them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["install", "installed", "uninstall"]

ALIAS = "panoply"
TARGET = "panoply_async.compat"


class _AliasLoader(importlib.abc.Loader):
    """Loads ``panoply.x`` as the already existing module ``panoply_async.compat.x``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its own name. The import
        system has just given it the alias's spec; it keeps its own, so that
        ``importlib.reload``, ``find_spec`` and pickling still see
        ``panoply_async.compat.<name>``."""
        if self._own_spec is not None:
            module.__spec__ = self._own_spec


class _CompatFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == ALIAS:
            if _real_spec() is not None:
                return None  # a real panoply package: never shadow it
            return importlib.machinery.ModuleSpec(ALIAS, _AliasLoader(TARGET), is_package=True)
        if not fullname.startswith(ALIAS + "."):
            return None
        parent = sys.modules.get(ALIAS)
        if parent is None or getattr(parent, "__name__", None) != TARGET:
            return None  # submodules of a real panoply are its own business
        name = TARGET + fullname[len(ALIAS):]
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name),
                                              is_package=False)


_FINDER = _CompatFinder()
_LOCK = threading.Lock()


def _real_spec() -> importlib.machinery.ModuleSpec | None:
    """What the other finders make of ``panoply``; ``None`` when there is none."""
    for finder in list(sys.meta_path):
        # The startup hook (src/_panoply_async_hook.py) answers by installing this alias.
        if finder is _FINDER or getattr(finder, "defers_to_panoply_alias", False):
            continue
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec: importlib.machinery.ModuleSpec | None = find(ALIAS, None)
        if spec is not None:
            return spec
    return None


def install() -> bool:
    """Make ``import panoply`` (and ``panoply.errors``, ``panoply.resources``...) give
    :mod:`panoply_async.compat` when no real ``panoply`` package is importable.

    A real ``panoply`` (the legacy ``panoply-python-sdk``, installed or on
    ``sys.path``, or already imported) is never shadowed: it stays what ``import
    panoply`` gives. Idempotent; safe to call from several threads. Returns ``True``
    when ``import panoply`` now gives the compatibility layer, ``False`` when it
    gives a real package.
    """
    with _LOCK:
        if _FINDER not in sys.meta_path:
            # First, so that panoply.<name> is never found a second time as a file
            # of this package's directory by the path finder.
            sys.meta_path.insert(0, _FINDER)
    return installed()


def installed() -> bool:
    """``True`` when ``import panoply`` gives the compatibility layer."""
    module = sys.modules.get(ALIAS)
    if module is not None:
        return getattr(module, "__name__", None) == TARGET
    return _FINDER in sys.meta_path and _real_spec() is None


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and the ``panoply`` aliases it made.

    Modules that already imported ``panoply`` keep the objects they got.
    """
    with _LOCK:
        while _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
        for name, module in list(sys.modules.items()):
            if (name == ALIAS or name.startswith(ALIAS + ".")) and getattr(
                module, "__name__", ""
            ).startswith(TARGET):
                del sys.modules[name]
