"""What the browser is sent about an answer, one builder per payload: its sources, its end (`done`) and its error.
The stream's events and the conversation a reloaded page restores use the same ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chat.models import Message
from chat.rendering import render_answer
from chat.sse import sse_event
from reports.models import MovieSection, section_url
from reports.search import Hit

SNIPPET_CHARS = 240


def sources_payload(hits: Sequence[Hit], *, scored: bool = True) -> list[dict[str, Any]]:
    """The sections given to the answer. `scored`: the retrieval's scores, which only the stream that retrieved
    them knows (stored sources have none)."""
    return [
        {
            "id": hit.section_id,
            "film": hit.movie_title,
            "year": hit.movie_year,
            "slug": hit.movie_slug,
            "url": section_url(movie_slug=hit.movie_slug, section_id=hit.section_id),
            "heading": hit.heading,
            "snippet": _snippet(hit.content),
            "score": round(hit.score, 4) if scored else None,
        }
        for hit in hits
    ]


def done_payload(message: Message, hits: Sequence[Hit]) -> dict[str, Any]:
    urls = section_urls(hits)
    return {
        "message": str(message.uuid),
        "status": message.status,
        "html": render_answer(message.content, section_urls=urls),
        "citations": [
            {"id": section_id, "url": urls[section_id]}
            for section_id in message.cited_section_ids
            if section_id in urls
        ],
        "cached": message.cached,
        "provider": message.provider,
        "model": message.model,
        "timings": message.timings,
    }


def error_payload(message: Message) -> dict[str, Any] | None:
    """Why the answer failed (None when it did not): `message` is the text shown to the user."""
    if not message.error_code:
        return None
    return {
        "code": message.error_code,
        "message": message.error_text,
        "retryable": message.retryable,
        "retry_after": message.retry_after,
    }


def failed_payload(message: Message) -> dict[str, Any]:
    """The stream's `error` event."""
    return {"message": str(message.uuid), "status": message.status, "error": error_payload(message)}


DELETED = {
    "code": "deleted",
    "message": "This conversation was deleted, so its answer stopped.",
    "retryable": False,
    "retry_after": None,
}


def deleted_event(message_uuid: object) -> bytes:
    """The last event of every stream of an answer whose conversation was deleted while it was written."""
    return sse_event("error", {"message": str(message_uuid), "status": "failed", "error": DELETED})


def section_urls(hits: Sequence[Hit]) -> dict[int, str]:
    return {hit.section_id: section_url(movie_slug=hit.movie_slug, section_id=hit.section_id) for hit in hits}


def stored_hits(section_ids: Sequence[int], sections: Mapping[int, MovieSection]) -> list[Hit]:
    """The stored sources of a message, in their original order, from its sections (with their films)."""
    return [
        Hit(s.pk, s.movie_id, s.movie.title, s.movie.slug, s.movie.year, s.kind, s.heading, s.content, None, 0.0)
        for section_id in section_ids
        if (s := sections.get(section_id))
    ]


def load_stored_hits(section_ids: Sequence[int]) -> list[Hit]:
    return stored_hits(section_ids, sections_with_films(section_ids))


def sections_with_films(section_ids: Sequence[int] | set[int]) -> dict[int, MovieSection]:
    """The sections by id, with what their payloads show of their films (not their vectors)."""
    return (
        MovieSection.objects.select_related("movie")
        .only("id", "kind", "heading", "content", "movie__slug", "movie__title", "movie__year")
        .in_bulk(list(section_ids))
    )


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"


def final_event(message: Message, hits: Sequence[Hit]) -> bytes:
    """The stream's last event: `error` for a failed answer, else `done`."""
    if message.status == Message.Status.FAILED:
        return sse_event("error", failed_payload(message))
    return sse_event("done", done_payload(message, hits))
