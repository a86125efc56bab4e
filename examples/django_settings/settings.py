"""Django settings for the Panoply recipe: only what the recipe needs.

In your project, add the ``PANOPLY`` block to your own settings.py and copy
``panoply_client.py``; nothing else is Panoply-specific.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "recipe-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}

# Options for panoply_async.SyncSDK (see panoply_client.py); credentials and endpoint
# come from PANOPLY_APIKEY, PANOPLY_APISECRET and PANOPLY_ENDPOINT_URL.
PANOPLY = {
    # Below gunicorn's graceful_timeout (25 s here), below Kubernetes' 30 s grace period.
    "shutdown_timeout": 20.0,
    "spool_dir": os.environ.get("PANOPLY_SPOOL_DIR", str(BASE_DIR / "panoply-spool")),
}
