"""ASGI entry point: the web process (gunicorn with the uvicorn worker, see the Procfile)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flickora.settings")

application = get_asgi_application()
