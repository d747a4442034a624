"""Sign up, log in, log out, and the conversations of an anonymous visit joining the account on login."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chat.models import Conversation

PASSWORD = "a-long-Passw0rd-for-tests"


def ask_anonymously(client: Client, question: str = "Who directed it?", slug: str = "vertigo") -> Conversation:
    response = client.post(f"/movies/{slug}/chat/", {"question": question})
    assert response.status_code == 201, response.content
    return Conversation.objects.get(uuid=response.json()["conversation"])


def test_signing_up_logs_in_and_keeps_the_visits_conversations(client, sample_movies):
    first = ask_anonymously(client)
    second = ask_anonymously(client, "And the music?", slug="tokyo-story")
    anonymous_key = client.session.session_key
    response = client.post(
        "/accounts/signup/",
        {"username": "newfan", "password1": PASSWORD, "password2": PASSWORD, "next": "/chat/history/"},
    )
    assert (response.status_code, response["Location"]) == (302, "/chat/history/")
    user = User.objects.get(username="newfan")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session.session_key != anonymous_key  # login() gave the session a new key...
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.user, second.user) == (user, user)  # ...and the conversations followed
    body = client.get("/chat/history/").content.decode()
    assert "Your 2 conversations from this visit are now saved to your account." in body
    assert "Who directed it?" in body and "And the music?" in body


def test_logging_in_keeps_the_visits_conversations(client, sample_movies):
    user = User.objects.create_user("regular", password=PASSWORD)
    conversation = ask_anonymously(client)
    response = client.post("/accounts/login/", {"username": "regular", "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/")
    conversation.refresh_from_db()
    assert conversation.user == user
    # Asking on: the conversation is the account's now.
    more = client.post("/movies/vertigo/chat/", {"question": "More?", "conversation": str(conversation.uuid)})
    assert more.status_code == 201
    assert conversation.messages.filter(role="user").count() == 2


def test_another_visitors_conversations_stay_theirs(client, sample_movies):
    User.objects.create_user("regular", password=PASSWORD)
    stranger = Client()
    theirs = ask_anonymously(stranger, "Theirs")
    mine = ask_anonymously(client, "Mine")
    client.post("/accounts/login/", {"username": "regular", "password": PASSWORD})
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.user is None and theirs.session_key == stranger.session.session_key
    assert mine.user is not None
    assert stranger.get(f"/chat/conversations/{theirs.uuid}/").status_code == 200


def test_a_failed_login_moves_nothing(client, sample_movies):
    User.objects.create_user("regular", password=PASSWORD)
    conversation = ask_anonymously(client)
    response = client.post("/accounts/login/", {"username": "regular", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.user is None
    assert client.get(f"/chat/conversations/{conversation.uuid}/").status_code == 200


def test_logging_out_ends_access_to_the_accounts_conversations(client, sample_movies):
    User.objects.create_user("regular", password=PASSWORD)
    client.post("/accounts/login/", {"username": "regular", "password": PASSWORD})
    conversation = ask_anonymously(client)  # asked while logged in: the account's from the start
    assert conversation.user is not None and conversation.session_key == ""
    assert client.get("/accounts/logout/").status_code == 405  # logging out is a POST
    response = client.post("/accounts/logout/")
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get(f"/chat/conversations/{conversation.uuid}/").status_code == 404
    assert "No conversations yet." in client.get("/chat/history/").content.decode()


def test_a_second_login_after_logout_moves_only_the_new_visits_conversations(client, sample_movies):
    user = User.objects.create_user("regular", password=PASSWORD)
    client.post("/accounts/login/", {"username": "regular", "password": PASSWORD})
    client.post("/accounts/logout/")
    later = ask_anonymously(client, "Asked after logging out")
    client.post("/accounts/login/", {"username": "regular", "password": PASSWORD})
    later.refresh_from_db()
    assert later.user == user


@pytest.mark.parametrize(
    ("next_url", "location"),
    [("/movies/vertigo/?c=1", "/movies/vertigo/?c=1"), ("https://evil.example.com/", "/"), ("", "/")],
)
def test_signup_goes_back_only_to_our_own_pages(client, db, next_url, location):
    response = client.post(
        "/accounts/signup/", {"username": "fan", "password1": PASSWORD, "password2": PASSWORD, "next": next_url}
    )
    assert (response.status_code, response["Location"]) == (302, location)


def test_signup_shows_the_forms_errors(client, db):
    response = client.post("/accounts/signup/", {"username": "fan", "password1": "short", "password2": "other"})
    assert response.status_code == 200
    assert "The two password fields didn’t match." in response.content.decode()
    assert not User.objects.filter(username="fan").exists()


def test_the_login_and_signup_pages_render(client, db):
    login = client.get("/accounts/login/?next=/chat/history/").content.decode()
    assert '<input type="hidden" name="next" value="/chat/history/">' in login
    assert 'href="/accounts/signup/?next=/chat/history/"' in login
    signup = client.get("/accounts/signup/").content.decode()
    assert 'name="password2"' in signup


def test_a_logged_in_visitor_is_sent_on_from_the_signup_page(client, db):
    client.force_login(User.objects.create_user("regular"))
    response = client.get("/accounts/signup/")
    assert (response.status_code, response["Location"]) == (302, "/")


def test_the_header_offers_log_in_or_log_out(client, db):
    assert '<a href="/accounts/login/?next=/">Log in</a>' in client.get("/").content.decode()
    client.force_login(User.objects.create_user("regular"))
    body = client.get("/").content.decode()
    assert '<span class="who">regular</span>' in body
    assert '<form class="logout" action="/accounts/logout/" method="post">' in body
