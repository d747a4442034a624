"""Split a film's text into sections the embedder reads whole.

all-MiniLM-L6-v2 reads 256 word pieces and silently drops the rest, so text is cut at sentence boundaries into
pieces that fit, counted with the model's own tokenizer. A sentence too long on its own is cut between words.

Each sentence (and each word of a sentence cut between words) is counted once, and a chunk's count is the sum of its
pieces': word pieces never span a space, so text joined by spaces counts what its parts count. Counting every
candidate chunk whole instead re-tokenized each chunk once per sentence added to it, five times the text overall.
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
    """Pack whole sentences into chunks of at most `budget` tokens each (as `count_tokens` counts them).

    `count_tokens` must add up over text joined by spaces, less what it counts for no text at all (the model's
    [CLS] and [SEP]): the model's word pieces do, and so do words."""
    fixed = count_tokens("")
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for sentence in split_sentences(text):
        tokens = count_tokens(sentence) - fixed
        if fixed + tokens <= budget:
            pieces = [(sentence, tokens)]
        else:
            pieces = _split_long(sentence, budget - fixed, lambda word: count_tokens(word) - fixed)
        for piece, tokens in pieces:
            if current and fixed + used + tokens > budget:
                chunks.append(" ".join(current))
                current, used = [], 0
            current.append(piece)
            used += tokens
    if current:
        chunks.append(" ".join(current))
    return chunks


def _split_long(sentence: str, budget: int, count_tokens: Callable[[str], int]) -> list[tuple[str, int]]:
    """The sentence cut between words into pieces of at most `budget` tokens, each with its count."""
    pieces: list[tuple[str, int]] = []
    words: list[str] = []
    used = 0
    for word in sentence.split():
        tokens = count_tokens(word)
        if words and used + tokens > budget:
            pieces.append((" ".join(words), used))
            words, used = [], 0
        words.append(word)
        used += tokens
    if words:
        pieces.append((" ".join(words), used))
    return pieces
