"""Writes to film facts move the corpus's generation too: the film pages and the catalogue, kept rendered by
generation (`reports.views`), show them (the facts panel, the score order, the filters)."""

from django.db import migrations

FACTS_SQL = """
CREATE TRIGGER reports_corpus_bump_facts AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reports_filmfacts
    FOR EACH STATEMENT EXECUTE FUNCTION reports_corpus_bump();
"""

REVERSE_SQL = "DROP TRIGGER reports_corpus_bump_facts ON reports_filmfacts;"


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0011_catalogue_indexes"),
    ]

    operations = [migrations.RunSQL(FACTS_SQL, REVERSE_SQL)]
