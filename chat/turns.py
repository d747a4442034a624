"""Starting, stopping and regenerating chat turns, and what the endpoints return about them (JSON)."""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from chat import ratelimit
from chat.models import Conversation, Message
from reports.models import Movie

TITLE_CHARS = 80


def check_rate_limit(request: HttpRequest) -> ratelimit.Verdict:
    window = settings.RATE_LIMIT_WINDOW
    requester = f"user:{request.user.pk}" if request.user.is_authenticated else f"session:{_session_key(request)}"
    return ratelimit.check_all(
        [
            (requester, ratelimit.Limit(settings.RATE_LIMIT_REQUESTS, window)),
            (f"ip:{client_ip(request)}", ratelimit.Limit(settings.RATE_LIMIT_IP_REQUESTS, window)),
        ]
    )


def client_ip(request: HttpRequest) -> str:
    if settings.RATE_LIMIT_TRUST_FORWARDED_FOR:
        forwarded = request.headers.get("X-Forwarded-For", "")
        # The proxy appends the address it saw: the last entry is the one the client cannot forge.
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "unknown")


def _session_key(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session["chat"] = True  # marks the session modified, so its cookie is sent
        request.session.save()
    return request.session.session_key or ""


@transaction.atomic
def ask(request: HttpRequest, *, movie: Movie | None, conversation: Conversation | None, question: str) -> Message:
    """Store the question and a pending answer (the stream generates it)."""
    if conversation is None:
        owner = {"user": request.user} if request.user.is_authenticated else {"session_key": _session_key(request)}
        conversation = Conversation.objects.create(movie=movie, title=_title(question), **owner)
    user_message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=question)
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.PENDING, reply_to=user_message
    )
    conversation.save(update_fields=["updated_at"])
    return answer


def regenerate(message: Message) -> Message:
    """A new answer to the same question (never from the answer cache)."""
    return Message.objects.create(
        conversation=message.conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.PENDING,
        reply_to=message.reply_to,
        regenerated_from=message,
    )


def stop(message: Message) -> str:
    """End an answer that is still pending or streaming; its stream notices within a flush and closes upstream."""
    Message.objects.filter(pk=message.pk, status__in=[Message.Status.PENDING, Message.Status.STREAMING]).update(
        status=Message.Status.STOPPED, finished_at=timezone.now()
    )
    message.refresh_from_db(fields=["status"])
    return message.status


def _title(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def ask_payload(answer: Message) -> dict[str, Any]:
    return {
        "conversation": str(answer.conversation.uuid),
        "message": str(answer.uuid),
        "stream": reverse("chat:stream", kwargs={"message_id": answer.uuid}),
        "stop": reverse("chat:stop", kwargs={"message_id": answer.uuid}),
        "regenerate": reverse("chat:regenerate", kwargs={"message_id": answer.uuid}),
    }


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    messages = conversation.messages.order_by("created_at", "id")
    return {
        "conversation": str(conversation.uuid),
        "title": conversation.title,
        "movie": conversation.movie.slug if conversation.movie_id else None,
        "messages": [
            {
                "id": str(message.uuid),
                "role": message.role,
                "status": message.status,
                "content": message.content,
                "error": {"code": message.error_code, "message": message.error_text} if message.error_code else None,
                "stream": reverse("chat:stream", kwargs={"message_id": message.uuid})
                if message.role == Message.Role.ASSISTANT
                else None,
            }
            for message in messages
        ],
    }
