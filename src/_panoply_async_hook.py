"""Startup hook of panoply-async: ``import panoply`` works in any script (issue 20).

``panoply_async_hook.pth`` runs :func:`register` at every interpreter start, so it
must stay cheap: it imports nothing beyond ``os`` and ``sys`` (both loaded already)
and only appends a finder to the end of ``sys.meta_path``. Being last, the finder
is asked about ``panoply`` only after every other finder found nothing, so a real
``panoply`` package (the legacy ``panoply-python-sdk``) is never shadowed. Only then
does it import panoply_async and hand over to
``panoply_async.connectors._panoply_alias.install()``, the finder ``compat.install()``
uses. ``PANOPLY_ASYNC_NO_ALIAS=1`` (any value but ``0`` or empty) switches it off.
"""

import os
import sys

# No typing import at run time: it alone would cost every interpreter start ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["DISABLE_VARIABLE", "register"]

DISABLE_VARIABLE = "PANOPLY_ASYNC_NO_ALIAS"
_ALIAS = "panoply"


class _LastResortFinder:
    """Answers ``panoply`` (when nobody else does) by installing the compat alias."""

    #: tells ``_panoply_alias`` to skip this finder when it looks for a real panoply
    defers_to_panoply_alias = True

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname != _ALIAS:
            return None
        from panoply_async.connectors._panoply_alias import install

        if not install():
            return None  # a real panoply appeared meanwhile: not ours to answer
        # install() put the alias finder first; let it answer this import too.
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = (
                find(fullname, path, target) if find and finder is not cls else None
            )
            if spec is not None:
                return spec
        return None


def register() -> None:
    """Append the finder (once), unless ``PANOPLY_ASYNC_NO_ALIAS`` switches it off."""
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return
    if _LastResortFinder not in sys.meta_path:
        sys.meta_path.append(_LastResortFinder)
