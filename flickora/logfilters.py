"""Logging filters named in settings.LOGGING."""

import logging


class ClientMistake(logging.Filter):
    """A request too large or with too many fields is the client's doing, answered 400: Django logs it as an ERROR
    with a traceback; this makes it one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True
