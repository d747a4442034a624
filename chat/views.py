"""Chat endpoints: ask (POST), stream (SSE), stop, regenerate, and a conversation's messages (JSON); the
all-films chat page and the history of conversations (list, delete, export)."""

from collections.abc import Generator
from uuid import UUID

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import history, turns
from chat.database import drain
from chat.forms import ConversationPageForm, QuestionForm
from chat.models import Conversation, Message
from chat.streams import stream_message
from reports.models import Movie

# Questions offered in an empty all-films chat.
ALL_FILMS_SUGGESTIONS = [
    "A film about a samurai or a detective?",
    "Which films are about memory and obsession?",
    "Recommend a comedy from the 1930s.",
    "Which films were shot in Japan?",
]
HISTORY_PAGE_SIZE = 30


def _error(code: str, message: str, status: int, *, fields: dict | None = None, **headers: object) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, **(fields or {})}}, status=status)
    for header, value in headers.items():
        response[header.replace("_", "-")] = str(value)
    return response


def _too_many_in_flight(refused: turns.TooManyInFlight) -> JsonResponse:
    count = len(refused.in_flight)
    message = (
        f"You already have {count} answer{'s' if count != 1 else ''} being written. "
        "Wait for one to finish, or stop it, then ask again."
    )
    in_flight = [str(message.uuid) for message in refused.in_flight]
    return _error("too_many_in_flight", message, 429, fields={"in_flight": in_flight}, Retry_After=1)


def _ask(request: HttpRequest, movie: Movie | None) -> JsonResponse:
    form = QuestionForm(request.POST)
    if not form.is_valid():
        errors = next(iter(form.errors.as_data().values()))
        return _error(errors[0].code or "invalid", errors[0].messages[0], 400)
    verdict = turns.check_rate_limit(request)
    if not verdict.allowed:
        message = f"Too many questions. Try again in {verdict.retry_after} seconds."
        return _error("rate_limited", message, 429, Retry_After=verdict.retry_after)
    conversation = None
    if form.cleaned_data["conversation"]:
        conversation = (
            Conversation.objects.filter(history.owner_filter(request), movie=movie)
            .filter(uuid=form.cleaned_data["conversation"])
            .first()
        )
        if conversation is None:
            return _error("not_found", "No such conversation.", 404)
    try:
        answer = turns.ask(request, movie=movie, conversation=conversation, question=form.cleaned_data["question"])
    except turns.TooManyInFlight as refused:
        return _too_many_in_flight(refused)
    return JsonResponse(turns.ask_payload(answer), status=201)


@require_POST
def ask_movie(request: HttpRequest, slug: str) -> JsonResponse:
    movie = Movie.objects.filter(slug=slug).first()
    if movie is None:
        return _error("not_found", "No such film.", 404)
    return _ask(request, movie)


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie  # the page's chat panel POSTs questions
def ask_all(request: HttpRequest) -> HttpResponse:
    """GET: the all-films chat page. POST: a question to the all-films chat (the JSON ask endpoint)."""
    if request.method == "POST":
        return _ask(request, None)
    return render(request, "chat/all_films.html", {"suggestions": ALL_FILMS_SUGGESTIONS})


@require_GET
def stream(request: HttpRequest, message_id: UUID) -> StreamingHttpResponse:
    """The message's SSE stream. A sync view: the web process runs the lookup (and the middleware) on a page thread
    in one hop, then sends the stream from its event loop (flickora.handlers); the stream's own database work goes
    through `db`, never this request's connection."""
    message = Message.objects.filter(
        uuid=message_id,
        role=Message.Role.ASSISTANT,
        conversation__in=Conversation.objects.filter(history.owner_filter(request)),
    ).first()
    if not connection.in_atomic_block:
        # Given back now, not when the stream ends minutes later: under Django's own handler (WEB_THREADS=0) the
        # request keeps its connection to the end of the response, and a worker's streams would drain the pool.
        connection.close()
    if message is None:
        raise Http404("No such message.")
    offset = _offset(request.headers.get("Last-Event-ID") or request.GET.get("from"))
    response = StreamingHttpResponse(stream_message(message=message, offset=offset), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _offset(raw: str | None) -> int:
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


@require_POST
def stop(request: HttpRequest, message_id: UUID) -> JsonResponse:
    message = get_object_or_404(Message, _owner_of_message(request), uuid=message_id, role=Message.Role.ASSISTANT)
    return JsonResponse({"message": str(message.uuid), "status": turns.stop(message)})


@require_POST
def regenerate(request: HttpRequest, message_id: UUID) -> JsonResponse:
    message = get_object_or_404(Message, _owner_of_message(request), uuid=message_id, role=Message.Role.ASSISTANT)
    if not message.is_finished:
        return _error("still_streaming", "This answer is still being written; stop it first.", 409)
    verdict = turns.check_rate_limit(request)
    if not verdict.allowed:
        message_text = f"Too many questions. Try again in {verdict.retry_after} seconds."
        return _error("rate_limited", message_text, 429, Retry_After=verdict.retry_after)
    try:
        answer = turns.regenerate(request, message)
    except turns.TooManyInFlight as refused:
        return _too_many_in_flight(refused)
    return JsonResponse(turns.ask_payload(answer), status=201)


@require_GET
def conversation_detail(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    conversation = get_object_or_404(
        Conversation.objects.select_related("movie"), history.owner_filter(request), uuid=conversation_id
    )
    form = ConversationPageForm(request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.as_data().items()))
        return _error("invalid", f"{field}: {errors[0].messages[0]}", 400)
    try:
        return JsonResponse(turns.conversation_payload(conversation, **form.cleaned_data))
    except turns.UnknownCursor:
        return _error("invalid", "before: no such message in this conversation.", 400)


def _owner_of_message(request: HttpRequest) -> Q:
    return Q(conversation__in=Conversation.objects.filter(history.owner_filter(request)))


@require_GET
def history_list(request: HttpRequest) -> HttpResponse:
    conversations = history.conversations_of(history.owner_filter(request))
    page = Paginator(conversations, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    for conversation in page.object_list:
        conversation.page_url = history.page_url(conversation)
    return render(request, "chat/history.html", {"page": page})


@require_POST
def delete_conversation(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    conversation = get_object_or_404(Conversation, history.owner_filter(request), uuid=conversation_id)
    conversation.delete()
    messages.success(request, f"Deleted “{conversation}”.")
    return redirect("chat:history")


@require_GET
async def export_conversation(request: HttpRequest, conversation_id: UUID) -> StreamingHttpResponse:
    def export() -> tuple[Conversation, Generator[str, None, None]]:
        owned = Conversation.objects.select_related("movie").filter(history.owner_filter(request))
        conversation = get_object_or_404(owned, uuid=conversation_id)
        return conversation, history.export_markdown(conversation, base_url=request.build_absolute_uri("/"))

    # On the request's own thread, where `drain` then reads the export's cursor.
    conversation, markdown = await sync_to_async(export, thread_sensitive=True)()
    response = StreamingHttpResponse(drain(markdown), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{history.export_filename(conversation)}"'
    return response
