"""An incremental Server-Sent Events decoder (the subset of the WHATWG spec that chat streams use).

It is fed raw network chunks, so it has to cope with everything TCP and proxies do to a stream: a
multi-byte UTF-8 character split across two chunks, a CRLF split between chunks, and any of CRLF, LF or
CR as the line terminator.
"""

from __future__ import annotations

import codecs
import re

_EOL = re.compile(r"\r\n|\r|\n")

# A single SSE line longer than this is not a chat stream: stop buffering rather than grow without bound.
MAX_LINE_CHARS = 4 * 1024 * 1024


class SSELineTooLong(ValueError):
    """The upstream sent more than MAX_LINE_CHARS without a line break."""


class SSEDecoder:
    """Turns byte chunks into the `data` payloads of complete events (fields other than `data` are ignored).

    Usage: `for data in decoder.feed(chunk): ...` for each chunk, then `decoder.close()` at EOF.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # the start of a line whose terminator has not arrived yet
        self._after_cr = False  # the previous chunk ended in CR, so a leading LF belongs to it
        self._data: list[str] = []  # data lines of the event being assembled
        self._first_line = True

    def feed(self, chunk: bytes) -> list[str]:
        return self._feed_text(self._text.decode(chunk))

    def close(self) -> list[str]:
        """Flush at EOF.

        A trailing line without a terminator is dropped: it is most likely a truncated write. Data lines
        that were complete but not yet followed by the blank line are dispatched, because some servers end
        the body right after `data: [DONE]\\n`.
        """
        events = self._feed_text(self._text.decode(b"", final=True))
        self._partial = ""
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _feed_text(self, text: str) -> list[str]:
        if not text:
            return []
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]
        text = self._partial + text
        events: list[str] = []
        start = 0
        for match in _EOL.finditer(text):
            self._line(text[start : match.start()], events)
            start = match.end()
        self._partial = text[start:]
        # A CR at the very end was taken as a terminator; remember it so that an LF opening the next chunk
        # is not read as a second, empty line (which would dispatch an event early).
        self._after_cr = text.endswith("\r")
        if len(self._partial) > MAX_LINE_CHARS:
            raise SSELineTooLong(f"SSE line longer than {MAX_LINE_CHARS} characters")
        return events

    def _line(self, line: str, events: list[str]) -> None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return  # comment / keep-alive, e.g. OpenRouter's ": OPENROUTER PROCESSING"
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
