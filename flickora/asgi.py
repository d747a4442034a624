"""ASGI entry point: the web process (gunicorn with the uvicorn worker, see the Procfile)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flickora.settings")

application = get_asgi_application()

if settings.EMBEDDING_PRELOAD:
    # Load the embedding model now: with gunicorn's --preload this runs once in the master and the workers share
    # the weights, and no visitor waits seconds for the first question. Loading runs no torch thread pool, so
    # forking afterwards is safe.
    from reports.embeddings import get_embedder

    _ = get_embedder().model
