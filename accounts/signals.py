"""What happens on login: the conversations of the visit so far join the account."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from chat import history
from chat.turns import ANONYMOUS_KEY


def join_session_conversations(
    sender: type, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any
) -> None:
    """Receiver of `user_logged_in`. By now login() has given the session a new key, so the anonymous key the
    conversations were made under is read from the session's data, where the chat kept it."""
    if request is None or not hasattr(request, "session"):
        return
    session_key = request.session.pop(ANONYMOUS_KEY, None)
    if not session_key:
        return
    joined = history.adopt_session_conversations(session_key=session_key, user=user)
    if joined:
        text = (
            "Your conversation from this visit is"
            if joined == 1
            else f"Your {joined} conversations from this visit are"
        )
        messages.info(request, f"{text} now saved to your account.", fail_silently=True)
