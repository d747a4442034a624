"""The seed's entry point: `python manage.py shell < scripts/test_hnsw_index.py`.

It runs the `test_hnsw_index` management command (which is the real thing: `python manage.py test_hnsw_index`)
and exits with its status.
"""

from django.core.management import call_command

call_command("test_hnsw_index")
