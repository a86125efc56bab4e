"""A legacy-style connector, written the way connectors for panoply-python-sdk were:
``import panoply``, a ``panoply.DataSource`` subclass in a submodule, ``CONFIG`` here,
``def read(self)`` returning lists then ``None``, an ``"oauth"`` param and incremental
reads from ``source["lastTimeSucceed"]``. The tests run it unchanged."""

from .stream import Stream

CONFIG = {
    "title": "Legacy CRM",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "categories": ["CRM"],
    "keywords": ["crm", "legacy"],
    "params": [
        {"name": "access_token", "title": "Connect", "type": "oauth", "required": True},
        {"name": "pwd", "title": "Password", "type": "password"},
        {"name": "forms", "title": "Forms", "type": "list", "default": ["signup"]},
        {"name": "pages", "title": "Pages", "type": "number", "default": 2},
    ],
}

__all__ = ["CONFIG", "Stream"]
