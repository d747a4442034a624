"""Section vectors kept in their rows (storage MAIN) rather than out of line in the TOAST table.

A section's row passes the 2 kB above which PostgreSQL moves values out of line: a vector is 1,544 bytes, and the
text and its lexemes come on top. With pgvector's storage for the column (EXTERNAL) the vector was the first value
moved, so reading a section's vector took a lookup in the TOAST table's index and a page of that table besides the
row's own. A cross-film search reads a few hundred vectors (the distances of the nearest 60 sections, every section
of the other candidate films and of the first films). With MAIN, the text and the lexemes (EXTENDED: compressed,
then moved out) make room first and the vector stays in its row. What it saved: README, "Vectors in their rows".

Rows written before keep their vectors out of line until they are rewritten, so a table that has rows is rewritten
once here (VACUUM FULL, which rebuilds its indexes, the HNSW one included, and locks the table meanwhile: 3 s for
the 761 films, about 70 s for the benchmark's 100,000 sections). An empty table (a new install) costs nothing.
"""

import logging

from django.db import migrations

logger = logging.getLogger(__name__)


def store_vectors(connection, table: str, column: str, storage: str) -> bool:
    """Set where `column`'s values are kept (MAIN: in the row; EXTERNAL: out of line), then rewrite `table` when it
    has rows, so that those written before follow. Outside a transaction (VACUUM). Whether it rewrote the table."""
    if storage not in {"MAIN", "EXTERNAL"}:
        raise ValueError(f"unknown storage {storage!r}")
    table_name, column_name = connection.ops.quote_name(table), connection.ops.quote_name(column)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table_name} ALTER COLUMN {column_name} SET STORAGE {storage}")
        cursor.execute(f"SELECT EXISTS (SELECT FROM {table_name})")  # noqa: S608 (a quoted identifier)
        if not cursor.fetchone()[0]:
            return False
        logger.warning(
            "Rewriting %s once, for its %s storage (VACUUM FULL: the table is locked meanwhile)", table, storage
        )
        cursor.execute(f"VACUUM FULL {table_name}")
    return True


def forward(apps, schema_editor):
    store_vectors(schema_editor.connection, "reports_moviesection", "embedding", "MAIN")


def backward(apps, schema_editor):
    store_vectors(schema_editor.connection, "reports_moviesection", "embedding", "EXTERNAL")


class Migration(migrations.Migration):
    # VACUUM cannot run in a transaction.
    atomic = False

    dependencies = [
        ("reports", "0012_facts_move_the_generation"),
    ]

    operations = [migrations.RunPython(forward, backward)]
