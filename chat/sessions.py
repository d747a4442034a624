"""The session engine (SESSION_ENGINE): Django's database sessions, with a new visitor's session written once.

A visitor's first question stores their conversation under their session's key, so the key is needed before the
response. Django's store would make it then: a query to check the random key is unused, an INSERT in a transaction
of its own, and at the response an UPDATE in another, to add what the chat keeps in the session (seven round trips
for one visitor's first question). Here `reserve_key` chooses the key and the session is written once, by the
session middleware at the end of the request, as Django writes any other new session.

The key is 32 characters drawn from 36 (165 bits) by `secrets`, as Django draws it; no check for a clash is made
before the write, since the write itself refuses one (the key is the primary key).
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils.crypto import get_random_string


class SessionStore(DatabaseSessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._reserved = False  # a key chosen by reserve_key and not written yet

    def reserve_key(self) -> str:
        """This session's key; for a session with none yet, a new one, written with the session's data when the
        middleware saves it at the end of the request."""
        if self.session_key is None:
            self._get_session()  # an empty session's data, so that no load looks for the unwritten key
            self._session_key = get_random_string(32, VALID_KEY_CHARS)
            self._reserved = True
            self.modified = True
        return self.session_key

    @property
    def unwritten(self) -> bool:
        """Whether the session's key was chosen in this request and is not in the database yet: nothing can have
        been stored under it."""
        return self._reserved

    def save(self, must_create: bool = False) -> None:
        if self._reserved:
            # The first write of a reserved key: an INSERT, refused (CreateError) should the key exist.
            super().save(must_create=True)
            self._reserved = False
            return
        super().save(must_create=must_create)

    def cycle_key(self) -> None:
        self._reserved = False
        super().cycle_key()
