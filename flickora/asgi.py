"""ASGI entry point: the web process (gunicorn with the uvicorn worker, see the Procfile)."""

import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flickora.settings")
django.setup(set_prefix=False)

from flickora.handlers import Application  # noqa: E402 (needs the apps loaded)

application = Application()

if settings.EMBEDDING_PRELOAD:
    # Load the question encoder now (exporting it first if this data directory has none): with gunicorn's --preload
    # this runs once in the master and the workers share it, and no visitor waits for the first question. It starts
    # no thread pool (one intra-op thread), so forking afterwards is safe.
    from reports.embeddings import get_embedder

    get_embedder().warm()
