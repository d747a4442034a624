"""LLM-written report sections through the real parts: the embedded Postgres with the sample films, the real embedder,
and the fake LLM server on loopback answering each request by the film and the section its prompt asks for."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from benchmarks.fake_llm import FakeLLMServer
from llm import config_from_settings
from reports import generation, ingest
from reports.models import Movie, MovieSection, text_hash

CROWD_PLOT = (
    "The Crowd is a silent romance film directed by King Vidor. It stars James Murray, Eleanor Boardman and Bert Roach."
)
CROWD_LEGACY = (
    "Kevin Brownlow and David Gill restored The Crowd in 1981, with a score by Carl Davis. In 1989 the Library of "
    "Congress selected it for preservation in the National Film Registry."
)
HEAVEN_LEGACY = "In 1995, the film was selected for preservation in the United States National Film Registry."


class ReplyingFakeLLM(FakeLLMServer):
    """The fake LLM server answering each request from `answers`, keyed by the film and the section label its prompt
    names: a string is streamed back word by word, an int is answered as that HTTP error status."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[tuple[str, str], str | int] = {}

    def answer_for(self, body: Any) -> str | int:
        prompt = body["messages"][-1]["content"] if isinstance(body, dict) else ""
        film = re.search(r"^Film: (.+?)(?: \(\d+\))?$", prompt, re.MULTILINE)
        section = re.search(r"^Section: (.+?) — ", prompt, re.MULTILINE)
        return self.answers.get((film[1] if film else "", section[1] if section else ""), 404)

    async def _respond(self, request: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        answer = self.answer_for(request.body)
        request.scenario = f"status_{answer}" if isinstance(answer, int) else "scripted"
        return await super()._respond(request, reader, writer)

    def _tokens_for(self, scenario: str, params: dict[str, Any], body: dict[str, Any]) -> tuple[list[str], float]:
        return re.findall(r"\s*\S+", str(self.answer_for(body))), 0.0


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ReplyingFakeLLM]:
    with ReplyingFakeLLM() as server:
        yield server


@pytest.fixture
def llm(llm_server: ReplyingFakeLLM, settings: Any) -> Iterator[ReplyingFakeLLM]:
    llm_server.reset()
    llm_server.answers = {}
    settings.LLM_BASE_URL = llm_server.base_url
    settings.OPENROUTER_API_KEY = ""
    yield llm_server
    llm_server.reset()


@pytest.fixture
def crowd(sample_movies: dict[str, Movie]) -> Movie:
    return sample_movies["The Crowd"]


@pytest.fixture
def heaven(sample_movies: dict[str, Movie]) -> Movie:
    return sample_movies["All That Heaven Allows"]


def config() -> Any:
    made = config_from_settings(django_settings)
    assert made is not None
    return made


def layout(movie: Movie) -> list[tuple[int, str, str]]:
    return list(MovieSection.objects.for_movie(movie).values_list("position", "kind", "heading"))


def generate(*args: str) -> str:
    out = StringIO()
    call_command("generate_reports", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_a_plot_section_is_stored_after_the_overview_and_embedded(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT

    result = generation.generate_report(movie=crowd, kinds=["plot"], config=config())

    assert (result.written, result.insufficient, result.rejected, result.failed) == (["plot"], [], {}, [])
    assert (result.error, result.embedded) == (None, 1)
    assert layout(crowd) == [(0, "overview", "Overview"), (1, "plot", "Plot")]
    plot = MovieSection.objects.get(movie=crowd, kind="plot")
    assert plot.content == CROWD_PLOT
    assert plot.content_hash == text_hash(f"The Crowd. Plot. {CROWD_PLOT}")
    assert plot.embedded_hash == plot.content_hash
    assert plot.embedding is not None
    assert len(plot.embedding) == 384


def test_the_prompt_gives_the_source_text_and_forbids_inventing_facts(
    llm: ReplyingFakeLLM, crowd: Movie, settings: Any
) -> None:
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT

    generation.generate_report(movie=crowd, kinds=["plot"], config=config())

    assert len(llm.requests) == 1
    body = llm.requests[0].body
    assert (body["model"], body["stream"], body["temperature"], body["max_tokens"]) == (
        settings.LLM_MODEL,
        True,
        0.2,
        600,
    )
    system, user = body["messages"]
    assert system == {"role": "system", "content": generation.INSTRUCTIONS}
    assert "Use ONLY facts stated in the source text. Do not invent" in system["content"]
    assert "no budgets, no box-office grosses, no awards or nominations, no dates or years" in system["content"]
    assert "answer with exactly INSUFFICIENT and nothing else" in system["content"]
    assert user == {
        "role": "user",
        "content": (
            f"Film: The Crowd (1928)\nSection: Plot — {generation.KIND_SCOPES['plot']}\n\n"
            f'Source text:\n"""\n{crowd.source_text}\n"""\n\n'
            "Write the Plot section from the source text alone, or answer INSUFFICIENT."
        ),
    }


def test_insufficient_skips_the_kind_and_removes_an_earlier_section_of_it(llm: ReplyingFakeLLM, heaven: Movie) -> None:
    llm.answers[("All That Heaven Allows", "Reception")] = "INSUFFICIENT"
    llm.answers[("All That Heaven Allows", "Legacy")] = HEAVEN_LEGACY

    result = generation.generate_report(movie=heaven, kinds=["reception", "legacy"], config=config())

    assert (result.written, result.insufficient, result.removed) == (["legacy"], ["reception"], [])
    assert layout(heaven) == [(0, "overview", "Overview"), (1, "legacy", "Legacy")]

    llm.answers[("All That Heaven Allows", "Legacy")] = "INSUFFICIENT"
    result = generation.generate_report(movie=heaven, kinds=["legacy"], config=config(), force=True)

    assert (result.written, result.insufficient, result.removed, result.embedded) == ([], ["legacy"], ["legacy"], 0)
    assert layout(heaven) == [(0, "overview", "Overview")]


def test_sections_stating_facts_not_in_the_source_are_rejected(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Production")] = "King Vidor made The Crowd for MGM on a budget of $3 million."
    llm.answers[("The Crowd", "Reception")] = "The Crowd won the Golden Lion, and 90% of critics praised Vidor."

    result = generation.generate_report(movie=crowd, kinds=["production", "reception"], config=config())

    assert result.rejected == {"production": ["budget", "$3 million"], "reception": ["Golden", "Lion", "90%"]}
    assert (result.written, result.insufficient, result.failed) == ([], [], [])
    assert layout(crowd) == [(0, "overview", "Overview")]


def test_sections_are_kept_in_report_order_whatever_order_they_were_written_in(
    llm: ReplyingFakeLLM, crowd: Movie
) -> None:
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT
    llm.answers[("The Crowd", "Legacy")] = CROWD_LEGACY
    llm.answers[("The Crowd", "Cast and crew")] = "King Vidor directed James Murray, Eleanor Boardman and Bert Roach."

    generation.generate_report(movie=crowd, kinds=["legacy"], config=config())
    generation.generate_report(movie=crowd, kinds=["cast_crew", "plot"], config=config())

    assert layout(crowd) == [
        (0, "overview", "Overview"),
        (1, "plot", "Plot"),
        (2, "cast_crew", "Cast and crew"),
        (3, "legacy", "Legacy"),
    ]
    assert [request.body["messages"][1]["content"].split("\n")[1][:20] for request in llm.requests] == [
        "Section: Legacy — th",
        "Section: Plot — the ",
        "Section: Cast and cr",
    ]
    assert MovieSection.objects.needing_embedding().count() == 0


def test_a_long_answer_is_split_into_parts_the_embedder_reads_whole(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    # Every fact is the source's own, only far more of it than the embedder reads in one section.
    llm.answers[("The Crowd", "Legacy")] = f"{crowd.source_text} {crowd.source_text}"

    result = generation.generate_report(movie=crowd, kinds=["legacy"], config=config())

    assert (result.written, result.embedded) == (["legacy"], 2)
    assert layout(crowd) == [(0, "overview", "Overview"), (1, "legacy", "Legacy"), (2, "legacy", "Legacy, part 2")]
    parts = MovieSection.objects.filter(movie=crowd, kind="legacy").order_by("position")
    assert " ".join(part.content for part in parts) == " ".join(f"{crowd.source_text} {crowd.source_text}".split())


def test_a_re_run_without_force_asks_nothing_and_changes_nothing(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT
    llm.answers[("The Crowd", "Legacy")] = CROWD_LEGACY

    first = generate("--movie", crowd.slug, "--kinds", "legacy,plot")
    assert first.splitlines()[0] == (
        "Films: 1 done, 0 failed. Sections: 2 written, 0 already there, 0 skipped (insufficient source text), "
        "0 rejected (unsupported facts), 0 failed. Embedded 2 sections."
    )
    assert len(llm.requests) == 2
    before = list(MovieSection.objects.filter(movie=crowd).order_by("pk").values_list("pk", "position", "content_hash"))

    second = generate("--movie", crowd.slug, "--kinds", "legacy,plot")

    assert second.splitlines()[0] == (
        "Films: 1 done, 0 failed. Sections: 0 written, 2 already there, 0 skipped (insufficient source text), "
        "0 rejected (unsupported facts), 0 failed. Embedded 0 sections."
    )
    assert len(llm.requests) == 2
    assert (
        list(MovieSection.objects.filter(movie=crowd).order_by("pk").values_list("pk", "position", "content_hash"))
        == before
    )

    generate("--movie", crowd.slug, "--kinds", "legacy,plot", "--force")
    assert len(llm.requests) == 4
    assert layout(crowd) == [(0, "overview", "Overview"), (1, "plot", "Plot"), (2, "legacy", "Legacy")]


def test_a_500_for_one_film_is_reported_and_the_next_film_still_gets_its_sections(
    llm: ReplyingFakeLLM, crowd: Movie, heaven: Movie
) -> None:
    llm.answers[("All That Heaven Allows", "Plot")] = 500
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT
    llm.answers[("The Crowd", "Legacy")] = CROWD_LEGACY

    out = generate("--movie", crowd.slug, "--movie", heaven.slug, "--kinds", "plot,legacy")

    assert out.splitlines()[:2] == [
        "all-that-heaven-allows: failed (upstream_error) The LLM server had an internal error (HTTP 500). "
        "Please try again. (Internal Server Error)",
        "Films: 1 done, 1 failed. Sections: 2 written, 0 already there, 0 skipped (insufficient source text), "
        "0 rejected (unsupported facts), 2 failed. Embedded 2 sections.",
    ]
    # The failed film's run stopped at its first failed request; the next film was asked for both kinds.
    assert len(llm.requests) == 3
    assert layout(heaven) == [(0, "overview", "Overview")]
    assert layout(crowd) == [(0, "overview", "Overview"), (1, "plot", "Plot"), (2, "legacy", "Legacy")]


def test_rejections_are_reported_per_film_in_the_command_output(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Reception")] = "The Crowd won an Oscar."

    out = generate("--movie", crowd.slug, "--kinds", "reception")

    assert out.splitlines()[:2] == [
        "the-crowd: reception rejected, unsupported facts: Oscar",
        "Films: 1 done, 0 failed. Sections: 0 written, 0 already there, 0 skipped (insufficient source text), "
        "1 rejected (unsupported facts), 0 failed. Embedded 0 sections.",
    ]


def test_the_command_fails_when_every_film_failed(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Plot")] = 503
    out = StringIO()

    with pytest.raises(CommandError, match=r"^Every film failed \(1\)\.$"):
        call_command("generate_reports", "--movie", crowd.slug, "--kinds", "plot", "--no-progress", stdout=out)

    assert out.getvalue().splitlines()[0] == (
        "the-crowd: failed (upstream_unavailable) The LLM server or its model provider is temporarily unavailable "
        "(HTTP 503). Please try again. (No available model provider that meets your routing requirements)"
    )


def test_without_an_llm_the_command_says_how_to_configure_one(sample_movies: dict[str, Movie], settings: Any) -> None:
    settings.OPENROUTER_API_KEY = ""
    settings.LLM_BASE_URL = ""

    with pytest.raises(CommandError) as error:
        generate("--kinds", "plot")

    assert str(error.value) == (
        "No LLM is configured: set OPENROUTER_API_KEY (OpenRouter) or LLM_BASE_URL (an OpenAI-compatible server such "
        "as Ollama). Nothing generated."
    )
    assert MovieSection.objects.exclude(kind="overview").count() == 0


def test_unknown_kinds_and_films_are_refused_before_any_request(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    with pytest.raises(CommandError) as error:
        generate("--kinds", "plot,trivia")
    assert str(error.value) == (
        "unknown section kind(s): trivia. Choose from: plot, production, cast_crew, characters, themes, "
        "visual_technical, reception, legacy."
    )
    with pytest.raises(CommandError) as error:
        generate("--kinds", "overview")
    assert str(error.value) == "Overview sections are the source text's own (import_movies writes them)."
    with pytest.raises(CommandError) as error:
        generate("--movie", crowd.slug, "--movie", "no-such-film")
    assert str(error.value) == "No film with the slug(s): no-such-film."
    assert llm.requests == []


def test_re_importing_an_unchanged_film_keeps_its_generated_sections(llm: ReplyingFakeLLM, crowd: Movie) -> None:
    llm.answers[("The Crowd", "Plot")] = CROWD_PLOT
    generation.generate_report(movie=crowd, kinds=["plot"], config=config())
    record = next(r for r in ingest.wikipedia_records()[0] if r.source_key == crowd.source_key)

    report = ingest.import_records([record])

    assert (report.unchanged, report.sections_deleted) == (1, 0)
    assert layout(crowd) == [(0, "overview", "Overview"), (1, "plot", "Plot")]


def test_place_generated_sections_moves_them_past_a_longer_overview(crowd: Movie) -> None:
    plot = MovieSection.objects.create(
        movie=crowd,
        kind="plot",
        origin="generated",
        position=1,
        heading="Plot",
        content=CROWD_PLOT,
        content_hash="stale",
    )
    # The overview grew into the plot's place (as ingest does when re-splitting); the plot was parked far away.
    MovieSection.objects.filter(pk=plot.pk).update(position=1000)
    MovieSection.objects.create(
        movie=crowd, kind="overview", position=1, heading="Overview, part 2", content="More.", content_hash="x"
    )

    ingest.place_generated_sections(crowd)

    assert layout(crowd) == [(0, "overview", "Overview"), (1, "overview", "Overview, part 2"), (2, "plot", "Plot")]
    plot.refresh_from_db()
    assert plot.content_hash == text_hash(f"The Crowd. Plot. {CROWD_PLOT}")


SOURCE = (
    "Tokyo Story (東京物語) is a 1953 Japanese drama film directed by Yasujirō Ozu. It cost ¥40 million and "
    "earned 1,200 reviews. The film was nominated for two awards."
)


def test_the_guard_allows_the_source_s_numbers_names_title_and_sentence_openers() -> None:
    text = (
        "Throughout Tokyo Story, Ozu's 1953 drama follows a family. However, the film cost ¥40 million and earned "
        '1200 reviews. "After all," it was nominated. Themes: the family drifts apart.'
    )

    assert generation.unsupported_facts(text, source=SOURCE, allowed=["Tokyo Story", "1953", "Themes"]) == []


def test_the_guard_names_each_invented_number_and_name_in_order() -> None:
    text = (
        "Kurosawa admired Ozu's 1954 film, which cost ¥40 thousand, grossed $2 million and won an award at Cannes. "
        "Critics gave it 95 percent. Setsuko Hara stars; Hara is luminous."
    )

    assert generation.unsupported_facts(text, source=SOURCE) == [
        "Kurosawa",
        "1954",
        "¥40 thousand",
        "grossed",
        "$2 million",
        "award",
        "Cannes",
        "Critics",
        "95%",
        "Setsuko",
        "Hara",
    ]
