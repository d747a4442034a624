"""Database backend: Django's PostgreSQL backend that starts the embedded server before its first connection.

Starting lazily (not when settings are imported) keeps commands that never touch the database fast, and means the
server is started by whichever process needs it first.
"""

from pathlib import Path
from typing import Any

from django.db.backends.postgresql import base

from flickora.db import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        socket_dir = ensure_server(
            Path(self.settings_dict["EMBEDDED_DATA_DIR"]), self.settings_dict["NAME"] or "postgres"
        )
        params = super().get_connection_params()
        params["host"] = str(socket_dir)
        return params
