"""Past conversations: whose they are, listing them, moving a visit's ones to an account, exporting one."""

from collections.abc import Generator, Iterator, Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse

from chat.models import Conversation, Message
from reports.models import MovieSection


def owner_filter(request: HttpRequest) -> Q:
    """What the requester owns: their account's conversations, or their anonymous session's."""
    if request.user.is_authenticated:
        return Q(user=request.user)
    if not request.session.session_key:
        return Q(pk__in=[])
    return Q(user=None, session_key=request.session.session_key)


def conversations_of(owner: Q) -> QuerySet[Conversation]:
    """The owner's conversations, latest first, with their film and how many questions each holds."""
    return (
        Conversation.objects.filter(owner)
        .select_related("movie")
        .only("uuid", "title", "created_at", "updated_at", "movie__slug", "movie__title", "movie__year")
        .annotate(questions=Count("messages", filter=Q(messages__role=Message.Role.USER)))
        .order_by("-updated_at")
    )


def page_url(conversation: Conversation) -> str:
    """The page where the conversation goes on: its film's page, or the all-films chat."""
    page = conversation.movie.get_absolute_url() if conversation.movie_id else reverse("chat:ask_all")
    return f"{page}?c={conversation.uuid}"


def adopt_session_conversations(*, session_key: str, user: AbstractBaseUser) -> int:
    """Give the anonymous conversations of a session to the account that just logged in; how many moved."""
    if not session_key:
        return 0
    return Conversation.objects.filter(user=None, session_key=session_key).update(user=user)


def turns(messages: Sequence[Message]) -> list[tuple[Message, Message | None]]:
    """Each question with the answer shown for it: the latest one a regenerated answer did not replace."""
    replaced = {message.regenerated_from_id for message in messages}
    answers: dict[int, Message] = {}
    for message in messages:
        if message.role == Message.Role.ASSISTANT and message.reply_to_id and message.pk not in replaced:
            answers[message.reply_to_id] = message
    return [(message, answers.get(message.pk)) for message in messages if message.role == Message.Role.USER]


def export_filename(conversation: Conversation) -> str:
    film = conversation.movie.slug if conversation.movie_id else "all-films"
    return f"flickora-{film}-{conversation.created_at:%Y-%m-%d}-{str(conversation.uuid)[:8]}.md"


EXPORT_CHUNK_SIZE = 500  # messages read at a time from the database cursor


def export_markdown(conversation: Conversation, *, base_url: str) -> Generator[str, None, None]:
    """The conversation as a Markdown document, a question or an answer at a time: the messages' text is read
    from a server-side cursor as it is written out, never all at once. Citations stay `[id]` in the text and become
    links through reference definitions at the end of each answer, so any Markdown reader shows them as links."""
    base_url = base_url.rstrip("/")
    # First which messages are shown (each question, and the answer shown for it), from the small fields only.
    outline = list(
        conversation.messages.order_by("created_at", "id").only(
            "id", "role", "reply_to_id", "regenerated_from_id", "source_section_ids"
        )
    )
    shown = turns(outline)
    answer_of = {question.pk: answer.pk if answer else None for question, answer in shown}
    answers = [answer for _, answer in shown if answer is not None]
    cited = {section_id for answer in answers for section_id in answer.source_section_ids}
    sections = (
        MovieSection.objects.select_related("movie").only("heading", "movie__slug", "movie__title").in_bulk(cited)
    )
    hidden = {message.pk for message in outline} - answer_of.keys() - {answer.pk for answer in answers}
    last = max((message.pk for message in outline), default=0)  # a message asked meanwhile waits for the next export
    movie = conversation.movie
    about = f"About *{movie}*" if movie else "About all films"
    header = [
        f"# {conversation.title or 'Conversation'}",
        "",
        f"{about} · {base_url}{page_url(conversation)}  ",
        f"Started {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    messages = conversation.messages.filter(pk__lte=last).exclude(pk__in=hidden)
    blocks = _export_blocks(messages, header, answer_of, sections, base_url=base_url)
    return _without_trailing_space(blocks)


def _export_blocks(
    messages: QuerySet[Message],
    header: list[str],
    answer_of: dict[int, int | None],
    sections: dict[int, MovieSection],
    *,
    base_url: str,
) -> Iterator[str]:
    yield _block(header)
    # Each question followed by the answer shown for it, which may have been written after later questions (a
    # regenerated answer): ordered by the question's place, the question first.
    shown = (
        messages.annotate(
            turn_at=Coalesce("reply_to__created_at", "created_at"),
            turn_id=Coalesce("reply_to_id", "id"),
        )
        .order_by("turn_at", "turn_id", F("reply_to_id").asc(nulls_first=True))
        .defer("timings", "cited_section_ids")
    )
    for message in shown.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        if message.role == Message.Role.USER:
            yield _block(["## You", "", message.content, "", "## flickora", ""])
            if answer_of[message.pk] is None:
                yield _block(_answer_markdown(None, sections, base_url=base_url))
        else:
            yield _block(_answer_markdown(message, sections, base_url=base_url))


def _block(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _without_trailing_space(blocks: Iterator[str]) -> Generator[str, None, None]:
    """The blocks, ending in exactly one newline: whitespace is held back until more text follows it."""
    pending = ""
    for block in blocks:
        text = pending + block
        kept = text.rstrip()
        if kept:
            yield kept
        pending = text[len(kept) :]
    yield "\n"


def _answer_markdown(answer: Message | None, sections: dict[int, MovieSection], *, base_url: str) -> list[str]:
    if answer is None:
        return ["*No answer.*", ""]
    lines = [answer.content, ""] if answer.content else []
    if answer.status == Message.Status.FAILED:
        lines += [f"*No answer: {answer.error_text or answer.error_code}*", ""]
    elif answer.status == Message.Status.STOPPED:
        lines += ["*Stopped.*", ""]
    elif not answer.is_finished:
        lines += ["*Still being written when exported.*", ""]
    used = [sections[section_id] for section_id in answer.source_section_ids if section_id in sections]
    if used:
        lines += ["Sources:", ""]
        lines += [f"- [{s.movie.title}: {s.heading}]({base_url}{s.get_absolute_url()})" for s in used]
        lines += [""]
        lines += [
            f"[{s.pk}]: {base_url}{s.get_absolute_url()} ({_plain(s.movie.title)}: {_plain(s.heading)})" for s in used
        ]
        lines += [""]
    return lines


def _plain(text: str) -> str:
    """Text safe inside a reference definition's parenthesised title."""
    return text.replace("(", "").replace(")", "")
