"""Film facts from Wikidata (`FilmFacts`), and where a section's text comes from (`MovieSection.origin`): the film's
source text, its facts, or generation. Every section written before this that is not an overview was generated."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models


def _list() -> django.contrib.postgres.fields.ArrayField:
    return django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), blank=True, default=list, size=None)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0005_title_lexemes"),
    ]

    operations = [
        migrations.AddField(
            model_name="moviesection",
            name="origin",
            field=models.CharField(
                choices=[
                    ("source", "The film's source text"),
                    ("facts", "Wikidata facts"),
                    ("generated", "Generated from the source text"),
                ],
                default="source",
                max_length=10,
            ),
        ),
        migrations.RunSQL(
            "UPDATE reports_moviesection SET origin = 'generated' WHERE kind <> 'overview'",
            migrations.RunSQL.noop,
        ),
        migrations.CreateModel(
            name="FilmFacts",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("imdb_id", models.CharField(max_length=20, unique=True)),
                (
                    "matched_by",
                    models.CharField(help_text="How the film was matched to its Wikidata entry.", max_length=40),
                ),
                ("title", models.CharField(help_text="The title in Wikidata.", max_length=300)),
                ("year", models.PositiveSmallIntegerField()),
                ("rating", models.CharField(blank=True, max_length=20)),
                ("runtime", models.PositiveSmallIntegerField(blank=True, help_text="Minutes.", null=True)),
                ("genres", _list()),
                ("released", models.DateField(blank=True, null=True)),
                (
                    "released_precision",
                    models.CharField(blank=True, help_text="day, or year when only that is known.", max_length=4),
                ),
                ("directors", _list()),
                ("writers", _list()),
                ("cast", _list()),
                ("metacritic", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("languages", _list()),
                ("countries", _list()),
                ("awards", models.TextField(blank=True)),
                ("oscars", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("tomatometer", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("tomatoes_rating", models.FloatField(blank=True, null=True)),
                ("tomatoes_reviews", models.PositiveIntegerField(blank=True, null=True)),
                ("box_office", models.BigIntegerField(blank=True, help_text="US dollars.", null=True)),
                ("production", _list()),
                (
                    "movie",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="facts", to="reports.movie"
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "film facts",
                "indexes": [
                    django.contrib.postgres.indexes.GinIndex(fields=["directors"], name="facts_directors"),
                    django.contrib.postgres.indexes.GinIndex(fields=["cast"], name="facts_cast"),
                ],
            },
        ),
    ]
