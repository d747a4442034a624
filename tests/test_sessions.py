"""The session engine (chat/sessions.py): a new visitor's session is written once, at the end of their first
question, and is theirs from then on."""

import pytest
from django.contrib.sessions.backends.base import CreateError
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import sessions
from chat.models import Conversation, Message
from chat.turns import ANONYMOUS_KEY


@pytest.fixture
def visitor(db) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "k" * 32
    return client


def ask(client: Client, question: str = "Who directed it?", **data: str):
    return client.post(
        "/movies/vertigo/chat/", {"question": question, **data}, HTTP_X_CSRFTOKEN="k" * 32, REMOTE_ADDR="10.1.2.3"
    )


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The first words of each statement, without transaction control (savepoints, in a test's transaction)."""
    words = [" ".join(query["sql"].split()[:3]) for query in queries.captured_queries]
    return [sql for sql in words if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT"))]


def test_a_new_visitors_first_question_writes_their_session_once(visitor):
    with CaptureQueriesContext(connection) as queries:
        response = ask(visitor)
    assert response.status_code == 201, response.content
    assert statements(queries) == [
        'SELECT "reports_movie"."id", "reports_movie"."slug",',  # the film
        "INSERT INTO chat_ratecounter",  # the rate limits, in one statement
        'INSERT INTO "chat_conversation"',
        'INSERT INTO "chat_message"',
        'INSERT INTO "chat_message"',
        'INSERT INTO "django_session"',  # the session, once, with the chat's key in it
    ]
    key = visitor.cookies["sessionid"].value
    session = Session.objects.get(session_key=key)
    assert session.get_decoded() == {ANONYMOUS_KEY: key}
    conversation = Conversation.objects.get(uuid=response.json()["conversation"])
    assert (conversation.session_key, conversation.user) == (key, None)


def test_the_next_question_of_the_same_visitor_counts_their_answers_in_flight(visitor, settings):
    settings.CHAT_MAX_IN_FLIGHT = 1
    first = ask(visitor)
    assert first.status_code == 201
    with CaptureQueriesContext(connection) as queries:
        refused = ask(visitor, "And who wrote it?")
    assert refused.status_code == 429
    assert refused.json()["error"]["in_flight"] == [first.json()["message"]]
    key = visitor.cookies["sessionid"].value
    assert statements(queries)[3] == f"SELECT pg_advisory_xact_lock(hashtextextended('session:{key}', 0))"
    assert not [sql for sql in statements(queries) if sql.startswith('INSERT INTO "django_session"')]
    # Their conversation goes on in the same session.
    answer = Message.objects.get(uuid=first.json()["message"])
    Message.objects.filter(pk=answer.pk).update(status=Message.Status.COMPLETE)
    sessions_before = Session.objects.count()
    second = ask(visitor, "And who wrote it?", conversation=first.json()["conversation"])
    assert second.status_code == 201
    assert second.json()["conversation"] == first.json()["conversation"]
    assert (Session.objects.count(), visitor.cookies["sessionid"].value) == (sessions_before, key)


def test_a_reserved_key_that_is_already_taken_is_refused_not_overwritten(db, monkeypatch):
    taken = sessions.SessionStore()
    taken["owner"] = "someone else"
    taken.create()
    store = sessions.SessionStore()
    monkeypatch.setattr(sessions, "get_random_string", lambda length, chars: taken.session_key)
    assert store.reserve_key() == taken.session_key
    assert store.unwritten
    store[ANONYMOUS_KEY] = store.session_key
    with pytest.raises(CreateError):
        store.save()
    assert Session.objects.get(session_key=taken.session_key).get_decoded() == {"owner": "someone else"}


def test_a_reserved_key_is_kept_until_written_and_a_saved_session_is_updated_as_before(db):
    store = sessions.SessionStore()
    key = store.reserve_key()
    assert (len(key), store.reserve_key(), store.unwritten, store.modified) == (32, key, True, True)
    assert store.get(ANONYMOUS_KEY) is None  # no load of the unwritten key, which would forget it
    assert store.session_key == key
    store[ANONYMOUS_KEY] = key
    store.save()
    assert not store.unwritten
    store["more"] = 1
    store.save()
    assert Session.objects.get(session_key=key).get_decoded() == {ANONYMOUS_KEY: key, "more": 1}


def test_a_visitor_whose_session_is_gone_asks_under_a_new_one_that_their_cookie_then_names(visitor):
    visitor.cookies["sessionid"] = "gone" * 8  # a session pruned since, or never made here
    response = ask(visitor)
    assert response.status_code == 201, response.content
    key = visitor.cookies["sessionid"].value
    assert key != "gone" * 8
    conversation = Conversation.objects.get(uuid=response.json()["conversation"])
    assert conversation.session_key == key
    assert Session.objects.get(session_key=key).get_decoded() == {ANONYMOUS_KEY: key}
    # The conversation is theirs: its page of messages opens with the new cookie.
    assert visitor.get(f"/chat/conversations/{conversation.uuid}/").status_code == 200
