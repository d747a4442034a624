"""Starting, stopping and regenerating chat turns, and what the endpoints return about them (JSON)."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from chat import history, payloads, ratelimit
from chat.models import Conversation, Message
from chat.rendering import render_answer
from reports.models import Movie, MovieSection

TITLE_CHARS = 80
# The session key the anonymous conversations were made under, kept in the session's data: login() gives the
# session a new key but keeps its data, so the login receiver can still find them (accounts.signals).
ANONYMOUS_KEY = "chat_session_key"


class TooManyInFlight(Exception):
    """The requester already has CHAT_MAX_IN_FLIGHT answers being written."""

    def __init__(self, in_flight: list[Message]) -> None:
        super().__init__(f"{len(in_flight)} answers in flight")
        self.in_flight = in_flight


def requester(request: HttpRequest) -> str:
    """Whom a question counts against: the account, or the anonymous session."""
    return f"user:{request.user.pk}" if request.user.is_authenticated else f"session:{_session_key(request)}"


def check_rate_limit(request: HttpRequest) -> ratelimit.Verdict:
    """Count a question against the requester and its IP address, and, when it starts a new anonymous session,
    against the sessions started from that address."""
    window = settings.RATE_LIMIT_WINDOW
    ip = ratelimit.client_ip(request)
    limits = []
    if not request.user.is_authenticated and not request.session.session_key:
        limits.append(
            (
                f"new-session-ip:{ip}",
                ratelimit.Limit(settings.RATE_LIMIT_IP_NEW_SESSIONS, settings.RATE_LIMIT_NEW_SESSIONS_WINDOW),
            )
        )
    limits += [
        (requester(request), ratelimit.Limit(settings.RATE_LIMIT_REQUESTS, window)),
        (f"ip:{ip}", ratelimit.Limit(settings.RATE_LIMIT_IP_REQUESTS, window)),
    ]
    return ratelimit.check_all(limits)


def _session_key(request: HttpRequest) -> str:
    """The anonymous session's key; a new visitor's is chosen now and their session written at the response, once
    (chat.sessions)."""
    key = request.session.reserve_key()
    if request.session.get(ANONYMOUS_KEY) != key:
        request.session[ANONYMOUS_KEY] = key
    return key


def pending_expiry() -> datetime:
    """Pending answers asked before this have expired."""
    return timezone.now() - timedelta(seconds=settings.CHAT_PENDING_EXPIRY_SECONDS)


def _reserve_answer(request: HttpRequest) -> None:
    """Take one of the requester's CHAT_MAX_IN_FLIGHT places for a new answer (inside the transaction that creates
    it), or raise TooManyInFlight. An advisory lock per requester, held to the end of the transaction, keeps two
    asks arriving together from both taking the last place; their unopened answers that expired are ended first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [requester(request)])
    mine = Message.objects.filter(
        role=Message.Role.ASSISTANT, conversation__in=Conversation.objects.filter(history.owner_filter(request))
    )
    mine.expire_unopened(asked_before=pending_expiry())
    in_flight = list(mine.filter(status__in=Message.OPEN).order_by("created_at", "id"))
    if len(in_flight) >= settings.CHAT_MAX_IN_FLIGHT:
        raise TooManyInFlight(in_flight)


@transaction.atomic
def ask(request: HttpRequest, *, movie: Movie | None, conversation: Conversation | None, question: str) -> Message:
    """Store the question and a pending answer (the stream generates it); TooManyInFlight past the limit. A new
    visitor (a session whose key this request chose) has no answers in flight to count."""
    if not _new_visitor(request):
        _reserve_answer(request)
    started = conversation is None
    if conversation is None:
        owner = {"user": request.user} if request.user.is_authenticated else {"session_key": _session_key(request)}
        conversation = Conversation.objects.create(movie=movie, title=_title(question), **owner)
    user_message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=question)
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.PENDING, reply_to=user_message
    )
    if not started:  # a new conversation's updated_at is already now
        conversation.save(update_fields=["updated_at"])
    return answer


def _new_visitor(request: HttpRequest) -> bool:
    return not request.user.is_authenticated and request.session.unwritten


@transaction.atomic
def regenerate(request: HttpRequest, message: Message) -> Message:
    """A new answer to the same question (never from the answer cache); TooManyInFlight past the limit."""
    _reserve_answer(request)
    return Message.objects.create(
        conversation=message.conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        reply_to=message.reply_to,
        regenerated_from=message,
    )


def stop(message: Message) -> str:
    """End an answer that is still pending or streaming; its stream notices within a flush and closes upstream."""
    Message.objects.filter(pk=message.pk).stop()
    message.refresh_from_db(fields=["status"])
    return message.status


def _title(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def ask_payload(answer: Message) -> dict[str, Any]:
    return {"conversation": str(answer.conversation.uuid), "message": str(answer.uuid), **_answer_urls(answer)}


def _answer_urls(answer: Message) -> dict[str, str]:
    return {
        name: reverse(f"chat:{name}", kwargs={"message_id": answer.uuid}) for name in ("stream", "stop", "regenerate")
    }


class UnknownCursor(Exception):
    """`before` names no message of the conversation."""


def conversation_payload(
    conversation: Conversation, *, before: UUID | None = None, limit: int | None = None
) -> dict[str, Any]:
    """A page of the conversation as the chat panel restores it after a reload: the `limit` messages before the
    message `before` (the latest ones without it), oldest first; `next`, the cursor of the page before, or null
    at the start. Each answer comes with its sources, its rendered HTML once finished, and whether a regenerated
    answer (perhaps on a later page) replaced it; `reply_to` names its question, perhaps on an earlier page."""
    limit = min(limit or settings.CHAT_CONVERSATION_PAGE_SIZE, settings.CHAT_CONVERSATION_PAGE_MAX)
    messages = conversation.messages.annotate(
        is_replaced=Exists(Message.objects.filter(regenerated_from=OuterRef("pk"))),
        reply_to_uuid=F("reply_to__uuid"),
    )
    if before is not None:
        cursor = conversation.messages.filter(uuid=before).values("created_at", "id").first()
        if cursor is None:
            raise UnknownCursor(before)
        at, pk = cursor["created_at"], cursor["id"]
        messages = messages.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=pk))
    newest_first = list(messages.order_by("-created_at", "-id")[: limit + 1])
    page = newest_first[:limit][::-1]
    section_ids = {section_id for message in page for section_id in message.source_section_ids}
    sections = payloads.sections_with_films(section_ids)
    movie = conversation.movie
    return {
        "conversation": str(conversation.uuid),
        "title": conversation.title,
        "movie": movie.slug if movie else None,
        "page": history.page_url(conversation),
        "messages": [
            _message_payload(
                message,
                sections,
                reply_to=str(message.reply_to_uuid) if message.reply_to_uuid else None,
                replaced=message.is_replaced,
            )
            for message in page
        ],
        "next": str(page[0].uuid) if len(newest_first) > limit else None,
    }


def _message_payload(
    message: Message, sections: dict[int, MovieSection], *, reply_to: str | None, replaced: bool
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(message.uuid),
        "role": message.role,
        "status": message.status,
        "content": message.content,
        "error": payloads.error_payload(message),
        "stream": None,
    }
    if message.role != Message.Role.ASSISTANT:
        return payload
    hits = payloads.stored_hits(message.source_section_ids, sections)
    finished_with_text = message.status in (Message.Status.COMPLETE, Message.Status.STOPPED)
    html = render_answer(message.content, section_urls=payloads.section_urls(hits)) if finished_with_text else None
    payload.update(
        {
            **_answer_urls(message),
            "reply_to": reply_to,
            "replaced": replaced,
            "sources": payloads.sources_payload(hits, scored=False),
            "html": html,
            "provider": message.provider,
            "cached": message.cached,
        }
    )
    return payload
