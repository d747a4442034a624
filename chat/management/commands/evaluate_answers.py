import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import evaluation
from reports.management.progress import progress_bar
from reports.models import Movie
from reports.search import FUSION, LEXICAL_ONLY, VECTOR_ONLY

MODES = {"fused": FUSION, "vector": VECTOR_ONLY, "lexical": LEXICAL_ONLY}


class Command(BaseCommand):
    help = (
        "Run the question set through the real retrieval and the offline answerer: film recall@1, recall@5 and MRR "
        "for the all-films chat, fact accuracy on film pages, and the latency of each stage, per split."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", type=Path, default=evaluation.DEFAULT_SET, help="A questions.jsonl file.")
        parser.add_argument("--split", choices=[*evaluation.SPLITS, "all"], default="all")
        parser.add_argument(
            "--mode", choices=sorted(MODES), default="fused", help="fused (the app's), or one retriever alone."
        )
        parser.add_argument(
            "--tune", action="store_true", help="Search the fusion weights on the tuning half and print the best."
        )
        parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
        parser.add_argument("--misses", action="store_true", help="List the questions answered wrongly.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            questions = evaluation.load_questions(options["questions"])
        except (OSError, evaluation.QuestionSetError) as error:
            raise CommandError(str(error)) from None
        if options["tune"]:
            self._tune(questions, options)
            return
        if options["split"] != "all":
            questions = [q for q in questions if q.split == options["split"]]
        if not questions:
            raise CommandError("No questions to evaluate.")
        try:
            outcomes = evaluation.evaluate(
                questions,
                fusion=MODES[options["mode"]],
                progress=lambda items: progress_bar(not options["no_progress"], self.stderr)(items, "Questions"),
            )
        except evaluation.QuestionSetError as error:
            raise CommandError(f"{error}; import the films first (python manage.py import_movies)") from None
        figures = {"mode": options["mode"], **evaluation.report(outcomes)}
        self.stdout.write(f"Mode: {options['mode']}. {options['questions']}\n")
        self.stdout.write(evaluation.table(figures))
        if options["misses"]:
            titles = dict(Movie.objects.values_list("pk", "title"))
            self.stdout.write("\n".join(["", "Wrong:", *evaluation.misses(outcomes, titles)]))
        if options["json"]:
            options["json"].write_text(json.dumps(figures, indent=2) + "\n")
            self.stdout.write(f"\nWrote {options['json']}.")

    def _tune(self, questions: list[evaluation.Question], options: dict[str, Any]) -> None:
        tuning = [q for q in questions if q.split == "tune"]
        bar = progress_bar(not options["no_progress"], self.stderr)
        trials = evaluation.tune(tuning, progress=lambda items: bar(items, "Questions"))
        asked = sum(q.kind != evaluation.NONE_KIND for q in tuning)
        self.stdout.write(f"{len(trials)} fusions tried on the {asked} all-films questions of the tuning half.")
        best_per_method: dict[int, evaluation.Trial] = {}
        for trial in trials:
            best_per_method.setdefault(trial.fusion.rrf_k, trial)
        shown = list(dict.fromkeys([*trials[:5], *best_per_method.values()]))
        self.stdout.write("The best five, then the best of each method (rrf_k 0: weighted sum of scaled scores):")
        for trial in shown:
            f = trial.fusion
            self.stdout.write(
                f"  rrf_k {f.rrf_k:<3} lexical weight {f.lexical:<5} "
                f"recall@1 {trial.recall_at_1:.3f}  recall@5 {trial.recall_at_5:.3f}  MRR {trial.mrr:.3f}"
            )
