"""The titles' lexemes as a stored column with its GIN index, which replaces the expression index on
to_tsvector(title): retrieval no longer parses titles at each question."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0004_lexicon"),
    ]

    operations = [
        migrations.AddField(
            model_name="movie",
            name="title_lexemes",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Func(
                    models.F("title"),
                    function="tsvector_to_array",
                    template="tsvector_to_array(to_tsvector('english'::regconfig, %(expressions)s))",
                ),
                output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None),
            ),
        ),
        migrations.AddIndex(
            model_name="movie",
            index=django.contrib.postgres.indexes.GinIndex(fields=["title_lexemes"], name="movie_title_lexemes"),
        ),
        migrations.RunSQL(
            "DROP INDEX movie_title_search",
            "CREATE INDEX movie_title_search ON reports_movie USING gin (to_tsvector('english', title))",
        ),
    ]
