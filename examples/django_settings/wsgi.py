"""The WSGI entry point, for gunicorn::

    gunicorn -c examples/flask_app/gunicorn.conf.py --chdir examples/django_settings \
        wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
application = get_wsgi_application()
