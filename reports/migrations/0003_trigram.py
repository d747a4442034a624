import django.contrib.postgres.indexes
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_movie_section"),
    ]

    operations = [
        TrigramExtension(),
        migrations.AddIndex(
            model_name="movie",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["title"], name="movie_title_trgm", opclasses=["gin_trgm_ops"]
            ),
        ),
    ]
