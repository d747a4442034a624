"""Split a film's text into sections the embedder reads whole.

all-MiniLM-L6-v2 reads 256 word pieces and silently drops the rest, so text is cut at sentence boundaries into
pieces that fit, counted with the model's own tokenizer. A sentence too long on its own is cut between words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Where a sentence ends: . ! ? (with closing quotes/brackets) followed by space and a capital, digit or quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])")
# Tokens before a full stop that do not end a sentence: initials (F. W. Murnau) and common abbreviations.
_ABBREVIATION = re.compile(
    r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Lt|Col|Gen|Sgt|Capt|Mt|vs|etc|No|Vol|approx|ca|c|U\.S|U\.K))\.$"
)


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            candidate = paragraph[start : match.start()].rstrip()
            if _ABBREVIATION.search(candidate.rstrip("\"'”’)]")):
                continue
            sentences.append(paragraph[start : match.end()].strip())
            start = match.end()
        sentences.append(paragraph[start:].strip())
    return [sentence for sentence in sentences if sentence]


def split_into_chunks(text: str, *, budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Pack whole sentences into chunks of at most `budget` tokens each (as `count_tokens` counts them)."""
    chunks: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(text):
        pieces = [sentence] if count_tokens(sentence) <= budget else _split_long(sentence, budget, count_tokens)
        for piece in pieces:
            if current and count_tokens(" ".join([*current, piece])) > budget:
                chunks.append(" ".join(current))
                current = []
            current.append(piece)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _split_long(sentence: str, budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    pieces: list[str] = []
    words: list[str] = []
    for word in sentence.split():
        if words and count_tokens(" ".join([*words, word])) > budget:
            pieces.append(" ".join(words))
            words = []
        words.append(word)
    if words:
        pieces.append(" ".join(words))
    return pieces
