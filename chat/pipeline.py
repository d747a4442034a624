"""One chat turn as domain events: retrieval, then the answer from an LLM (or the offline answerer).

`answer_turn` yields `Sources`, `Answering`, then `Text` pieces, and ends with `Done` or, when the LLM fails, `Error`.
It changes nothing it is given and knows nothing of HTTP or Server-Sent Events: the writer (chat.writer) persists the
events and sends them on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from chat import condensing, offline, prompts
from chat.database import db
from chat.models import Message
from llm import LLMConfig, LLMError, StreamResult, complete_chat, config_from_settings, stream_chat
from reports.batching import embed_query_async
from reports.embeddings import normalize_query
from reports.models import text_hash
from reports.search import (
    Hit,
    LexicalEvidence,
    SearchResult,
    cached_search,
    lexical_evidence,
    search_all,
    search_movie,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """What a turn is asked: the question, the conversation before it (role, text), and the film, if one."""

    question: str
    history: tuple[tuple[str, str], ...] = ()
    movie_id: int | None = None
    movie_title: str | None = None
    regenerated: bool = False  # a new answer asked for: never from the answer cache


@dataclass(frozen=True)
class TurnError:
    code: str
    message: str
    retryable: bool
    retry_after: float | None = None

    @classmethod
    def from_llm(cls, error: LLMError) -> TurnError:
        return cls(error.code, error.message, error.retryable, error.retry_after)


# What the user is told when answering failed for another reason than the LLM's (a bug, the database).
INTERNAL_ERROR = TurnError("internal_error", "Something went wrong while answering. Please try again.", True)


@dataclass(frozen=True)
class Sources:
    """The sections retrieved for the answer; `embed_ms` until the question's vector was ready, `search_ms` the
    rest of the search (across films its lexical statement runs while the question is embedded)."""

    hits: tuple[Hit, ...]
    embed_ms: float
    search_ms: float


@dataclass(frozen=True)
class Answering:
    """Who answers: an LLM, the offline answerer, or the answer cache (`cached`); `upstream_ms` is when the request
    to the LLM went out, since the turn opened."""

    provider: str
    model: str
    cached: bool = False
    upstream_ms: float | None = None


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Done:
    model: str  # the model that answered (OpenRouter may fall back to another)


@dataclass(frozen=True)
class Error:
    error: TurnError


Event = Sources | Answering | Text | Done | Error


def load_turn(message: Message) -> Turn:
    """The turn an assistant message answers, with the conversation before its question."""
    question = message.reply_to
    movie = message.conversation.movie
    history: list[tuple[str, str]] = []
    if question is not None:
        earlier = (
            Message.objects.filter(conversation=message.conversation_id, created_at__lt=question.created_at)
            .exclude(role=Message.Role.ASSISTANT, status__in=[Message.Status.FAILED, Message.Status.PENDING])
            .exclude(regenerations__isnull=False)
            .order_by("created_at", "id")
            .values_list("role", "content")
        )
        history = [(role, content) for role, content in earlier if content]
    return Turn(
        question=question.content if question else "",
        history=tuple(history),
        movie_id=movie.pk if movie else None,
        movie_title=movie.title if movie else None,
        regenerated=message.regenerated_from_id is not None,
    )


async def answer_turn(*, turn: Turn, opened: float) -> AsyncIterator[Event]:
    """The events of one turn (`opened`: `time.perf_counter()` when the turn began, for `upstream_ms`)."""
    try:
        async with contextlib.aclosing(_answer(turn, opened)) as events:
            async for event in events:
                yield event
    except LLMError as exc:
        yield Error(TurnError.from_llm(exc))


async def _answer(turn: Turn, opened: float) -> AsyncIterator[Event]:
    config = config_from_settings(settings)  # None: the offline answerer
    query = await _search_query(turn, config)
    started = time.perf_counter()
    answer_key = _answer_key(turn, config)
    with searching.turn() as alone:
        if alone:
            hits, remembered, embed_ms = await db(functools.partial(_search_alone, turn.movie_id, query, answer_key))
        else:
            hits, remembered, embed_ms = await _search_together(turn.movie_id, query, answer_key, started)
    yield Sources(tuple(hits), embed_ms=embed_ms, search_ms=round(_ms(started) - embed_ms, 2))
    cached = _reusable(remembered, hits)
    if cached:
        yield Answering(cached["provider"], cached["model"], cached=True)
        yield Text(cached["content"])
        yield Done(cached["model"])
        return

    provider, model = (config.provider, config.model) if config else ("offline", "")
    result = StreamResult()
    if config:
        llm_messages = prompts.build_messages(
            question=turn.question,
            hits=hits,
            history=turn.history,
            film_title=turn.movie_title,
            history_budget_chars=settings.CHAT_HISTORY_BUDGET_CHARS,
        )
        pieces = stream_chat(config=config, messages=llm_messages, result=result)
    else:
        pieces = _aiter(offline.offline_answer(question=turn.question, hits=hits))
    yield Answering(provider, model, upstream_ms=_ms(opened))
    content = ""
    # Stopping (the writer's task is cancelled) closes the upstream request at once.
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            content += piece
            yield Text(piece)
    model = result.model or model
    if answer_key:
        entry = {"content": content, "provider": provider, "model": model, "sections": _sections_signature(hits)}
        await db(lambda: cache.set(answer_key, entry, settings.RESPONSE_CACHE_TTL))
    yield Done(model)


async def _search_query(turn: Turn, config: LLMConfig | None) -> str:
    """A follow-up ("and who directed it?") rewritten as a standalone search query."""
    if not turn.history:
        return turn.question
    if config:
        try:
            condensed = await asyncio.wait_for(
                complete_chat(
                    config=config,
                    messages=condensing.condense_messages(question=turn.question, history=turn.history),
                    max_tokens=60,
                    temperature=0.0,
                ),
                timeout=settings.LLM_TIMEOUT,
            )
            if condensed.strip():
                return " ".join(condensed.split())[:500]
        except (LLMError, TimeoutError) as exc:
            logger.info("Condensing the follow-up failed (%s); using the heuristic", getattr(exc, "code", exc))
    return condensing.condense_heuristic(question=turn.question, history=turn.history, film_title=turn.movie_title)


class _Searching:
    """How many turns of this process are between their start and their sources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextlib.contextmanager
    def turn(self) -> Iterator[bool]:
        """Count a turn while it searches; True when no other turn is searching."""
        with self._lock:
            alone, self.count = self.count == 0, self.count + 1
        try:
            yield alone
        finally:
            with self._lock:
                self.count -= 1


searching = _Searching()


def _search_alone(
    movie_id: int | None, query: str, answer_key: str | None, vector: Any = None
) -> tuple[list[Hit], Any, float]:
    """One database call: the search, then the answer cache's entry for the question. Without `vector` (a turn no
    other is searching beside) the question is embedded on this thread (across films while the server runs the
    lexical statement), with no hop to the batching thread and back. The hits, the entry, and the milliseconds until
    the vector was ready."""
    if movie_id is None:
        result = search_all(query=query, vector=vector)
    else:
        result = search_movie(movie_id=movie_id, query=query, vector=vector)
    return result.hits, _cached_answer(answer_key), round(result.timings["embed"], 2)


async def _search_together(
    movie_id: int | None, query: str, answer_key: str | None, started: float
) -> tuple[list[Hit], Any, float]:
    """Turns that search at the same time (a burst) have their questions embedded together on the batching thread,
    below the streams' priority, while their first database call (across films) runs."""
    embedding = asyncio.ensure_future(embed_query_async(query))
    found: LexicalEvidence | SearchResult | None = None
    remembered: dict[str, Any] | None = None
    if movie_id is None:
        # Across films, while the question is embedded: the cached result or the lexical statement, and the answer
        # cache's entry for the question (checked against the sections once they are known).
        found, remembered = await db(functools.partial(_cached_or_lexical, query, answer_key))
    vector = await embedding
    embed_ms = _ms(started)
    if isinstance(found, SearchResult):  # a question this process searched before: no database call
        hits = found.hits
    elif movie_id is None:
        hits = (await db(functools.partial(search_all, query=query, vector=vector, lexical=found))).hits
    else:
        hits, remembered, _ = await db(functools.partial(_search_alone, movie_id, query, answer_key, vector))
    return hits, remembered, embed_ms


def _cached_or_lexical(query: str, answer_key: str | None) -> tuple[LexicalEvidence | SearchResult, Any]:
    """The cross-film search's first database call: the cached result, or the lexical statement; and the answer
    cache's entry for the question."""
    found = cached_search(query=query) or lexical_evidence(query)
    return found, _cached_answer(answer_key)


def _cached_answer(answer_key: str | None) -> Any:
    """The answer cache's entry under `answer_key` (None when there is none, or no key)."""
    return cache.get(answer_key) if answer_key else None


def _answer_key(turn: Turn, config: LLMConfig | None) -> str | None:
    """Where the answer to a first question is cached (a follow-up's depends on the conversation): by the film, the
    normalised question and the answerer. The entry also names the exact sections it was given (`_reusable`), so the
    cache can be read while the question is still being embedded, before the sections are known."""
    if turn.history or turn.regenerated or settings.RESPONSE_CACHE_TTL <= 0:
        return None
    answerer = f"{config.provider}:{config.model}" if config else "offline"
    raw = f"{turn.movie_id}|{normalize_query(turn.question)}|{answerer}"
    return "answer:" + hashlib.sha256(raw.encode()).hexdigest()


def _sections_signature(hits: Sequence[Hit]) -> str:
    """The sections an answer was given, each with a hash of its text: new report text is another signature."""
    return ",".join(f"{hit.section_id}:{text_hash(hit.content)[:16]}" for hit in hits)


def _reusable(entry: Any, hits: Sequence[Hit]) -> dict[str, Any] | None:
    """The cached answer if it was given exactly these sections (an entry of another form counts as none)."""
    if isinstance(entry, dict) and entry.get("sections") == _sections_signature(hits):
        return entry
    return None


async def _aiter(pieces: Iterator[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
