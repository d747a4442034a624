"""The corpus's generation: every statement that writes films or sections (insert, update, delete, truncate, COPY)
sets it to the next value of a sequence, in the writer's transaction, so it is seen together with what was written.
A sequence never gives a value twice, even when the transaction that took it rolls back, so a generation names one
state of the films. A retrieval result cached at one generation is served only while it is the same
(`reports.search`)."""

from django.db import migrations, models

GENERATION_SQL = """
CREATE SEQUENCE reports_corpus_generation;

CREATE FUNCTION reports_corpus_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reports_corpus SET generation = nextval('reports_corpus_generation') WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER reports_corpus_bump_sections AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reports_moviesection
    FOR EACH STATEMENT EXECUTE FUNCTION reports_corpus_bump();
CREATE TRIGGER reports_corpus_bump_movies AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reports_movie
    FOR EACH STATEMENT EXECUTE FUNCTION reports_corpus_bump();
"""

REVERSE_SQL = """
DROP TRIGGER reports_corpus_bump_movies ON reports_movie;
DROP TRIGGER reports_corpus_bump_sections ON reports_moviesection;
DROP FUNCTION reports_corpus_bump();
DROP SEQUENCE reports_corpus_generation;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0008_section_origin_default"),
    ]

    operations = [
        migrations.AddField(
            model_name="corpus",
            name="generation",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.RunSQL(GENERATION_SQL, REVERSE_SQL),
    ]
