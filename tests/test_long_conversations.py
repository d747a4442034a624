"""A conversation of thousands of messages, through the real server: its JSON comes in pages of bounded size with
cursors that walk back to the start, and its Markdown export streams the whole of it."""

import httpx
import pytest
from django.db import connection

from chat.models import Conversation, Message
from tests.test_chat import ask, committed

TURNS = 3000  # 6,000 messages


@pytest.fixture
def long_conversation(web):
    """The session's conversation about Vertigo, made of TURNS questions each with its answer (bulk_create)."""
    conversation_id = ask(web, "A long one").json()["conversation"]

    def fill() -> None:
        conversation = Conversation.objects.get(uuid=conversation_id)
        conversation.messages.all().delete()
        messages = []
        for n in range(TURNS):
            messages.append(Message(conversation=conversation, role="user", content=f"Question {n}"))
            messages.append(Message(conversation=conversation, role="assistant", content=f"Answer {n}"))
        Message.objects.bulk_create(messages, batch_size=2000)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE chat_message SET reply_to_id = pair.question"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS pair(answer, question) WHERE id = pair.answer",
                [[m.pk for m in messages[1::2]], [m.pk for m in messages[0::2]]],
            )

    committed(fill)
    yield Conversation.objects.select_related("movie").get(uuid=conversation_id)
    committed(lambda: Conversation.objects.filter(uuid=conversation_id).delete())


def contents(page: dict) -> list[str]:
    return [message["content"] for message in page["messages"]]


def test_the_conversation_comes_in_pages_latest_first_with_cursors_back_to_the_start(web, long_conversation, settings):
    settings.CHAT_CONVERSATION_PAGE_SIZE = 100
    settings.CHAT_CONVERSATION_PAGE_MAX = 500
    url = f"/chat/conversations/{long_conversation.uuid}/"

    latest = web.get(url)
    assert latest.status_code == 200
    page = latest.json()
    assert contents(page) == [f"{kind} {n}" for n in range(2950, 3000) for kind in ("Question", "Answer")]
    assert page["next"] == page["messages"][0]["id"]
    assert len(latest.content) < 100_000  # bounded, where the whole conversation was megabytes

    pages, cursor = [], None
    while True:
        response = web.get(url, params={"limit": 10_000, **({"before": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.json()
        pages.append(contents(page))
        cursor = page["next"]
        if cursor is None:
            break
        assert cursor == page["messages"][0]["id"]
    assert [len(page) for page in pages] == [500] * 12  # `limit` past the most: the most
    walked = [content for page in reversed(pages) for content in page]
    assert walked == [f"{kind} {n}" for n in range(TURNS) for kind in ("Question", "Answer")]

    # An answer whose question is on the page before says which question it answers.
    split = web.get(url, params={"limit": 3}).json()
    assert contents(split) == ["Answer 2998", "Question 2999", "Answer 2999"]
    before = web.get(url, params={"limit": 1, "before": split["next"]}).json()
    assert contents(before) == ["Question 2998"]
    assert split["messages"][0]["reply_to"] == before["messages"][0]["id"]


def test_a_page_is_refused_for_a_cursor_of_another_conversation_or_a_bad_limit(web, long_conversation):
    url = f"/chat/conversations/{long_conversation.uuid}/"
    other = ask(web, "Another one").json()
    assert web.get(url, params={"before": other["message"]}).json() == {
        "error": {"code": "invalid", "message": "before: no such message in this conversation."}
    }
    assert web.get(url, params={"before": "not-a-uuid"}).status_code == 400
    assert web.get(url, params={"limit": "0"}).status_code == 400


def test_the_markdown_export_streams_every_message(web, long_conversation, live_server_asgi):
    conversation = long_conversation
    with web.stream("GET", f"/chat/conversations/{conversation.uuid}/export.md") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = list(response.iter_raw())
    text = b"".join(chunks).decode()
    assert len(chunks) > 1
    lines = text.split("\n")
    assert lines[:12] == [
        "# A long one",
        "",
        f"About *Vertigo (1958)* · {live_server_asgi.url}/movies/vertigo/?c={conversation.uuid}  ",
        f"Started {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        "",
        "## You",
        "",
        "Question 0",
        "",
        "## flickora",
        "",
        "Answer 0",
    ]
    assert lines[-8:] == ["## You", "", "Question 2999", "", "## flickora", "", "Answer 2999", ""]
    turns = [f"## You\n\nQuestion {n}\n\n## flickora\n\nAnswer {n}\n" for n in range(TURNS)]
    assert text == "\n".join(lines[:5]) + "\n" + "\n".join(turns)


def test_the_export_of_a_conversation_of_another_session_is_404(long_conversation, live_server_asgi):
    with httpx.Client(base_url=live_server_asgi.url) as stranger:
        assert stranger.get(f"/chat/conversations/{long_conversation.uuid}/export.md").status_code == 404
