"""ASGI entry point: the web process (gunicorn with the uvicorn worker, see the Procfile)."""

import gc
import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flickora.settings")
django.setup(set_prefix=False)

from flickora.handlers import Application  # noqa: E402 (needs the apps loaded)

application = Application()

# The young generation's collection threshold (Python's default is 700); the older generations keep theirs. Under a
# burst of streams a web worker holds a few hundred thousand objects alive (the requests, responses and tasks of 500
# streams). At the default its young collections promoted them, and the full collections that followed walked them
# all with the event loop held: four per worker, 41 to 287 ms each, in a run of 1,000 streams (timed by a gc callback
# in the workers, 2026-11-28), and each pause held back the next token of every stream. At 10,000 a worker made one
# full collection in such a run (91 ms), two middle ones (up to 48 ms) and 22 young ones (up to 26 ms). At 50,000,
# tried first, it made no full one, but each young collection took 40 to 67 ms and the catalogue page's p99 under
# load rose from 30 to 80-96 ms. Cyclic garbage is still collected in full, later. See README, "What is in the way".
GC_YOUNG_THRESHOLD = 10_000
gc.set_threshold(GC_YOUNG_THRESHOLD)

if settings.EMBEDDING_PRELOAD:
    # Load the question encoder now (exporting it first if this data directory has none): with gunicorn's --preload
    # this runs once in the master and the workers share it, and no visitor waits for the first question. It starts
    # no thread pool (one intra-op thread), so forking afterwards is safe.
    from reports.embeddings import get_embedder

    get_embedder().warm()
