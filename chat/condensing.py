"""Follow-up questions ("and who directed it?") as standalone search queries: by a language model when one is
configured (`condense_messages` is what it reads), else by a heuristic."""

from __future__ import annotations

from collections.abc import Sequence

from chat.citations import remove_citation_markers
from chat.text import content_words, one_line, truncate, unique_ci, words

# A question that leans on the conversation for its subject.
_FOLLOW_UP_OPENERS = tuple(
    tuple(opener.split()) for opener in ("and", "also", "so", "but", "then", "what about", "how about", "what else")
)
_BACK_REFERENCES = frozenset("it its itself he him his she her hers they them their theirs".split())
_DEMONSTRATIVES = frozenset("this that these those".split())
_REFERRING_NOUNS = frozenset("film movie one scene character story ending book role part version".split())
# Follow-ups chain ("who directed it?" then "and when?"): look back through at most this many user messages.
_CONDENSE_LOOKBACK = 3
_CONDENSE_MAX_TERMS = 12


def condense_heuristic(*, question: str, history: Sequence[tuple[str, str]], film_title: str | None) -> str:
    """The search query for `question` without a language model.

    A question is a follow-up when it has at most two words or no content word ("why?", "the ending?"), opens like
    a continuation ("and ...", "what about ...", "so ...", "also ..."), refers back with a pronoun (it, he, she,
    they and their forms), or uses this/that/these/those for a film, scene, character (or at the end of, or in, a
    question of at most six words). A follow-up gets, in front of it: the film's title when the chat is about one
    film and neither the question nor the terms below name it, then the content words of the previous user
    question (and of the ones before it while those were follow-ups too, up to three). Anything else is returned
    unchanged.

    "and who directed it?" after "Tell me about Vertigo" becomes "Vertigo and who directed it?".
    """
    if not is_follow_up(question):
        return question
    previous = [content for role, content in history if role == "user"][-_CONDENSE_LOOKBACK:]
    terms: list[str] = []
    for earlier in reversed(previous):
        terms = content_words(earlier) + terms
        if not is_follow_up(earlier):
            break
    prefix = unique_ci(terms)[-_CONDENSE_MAX_TERMS:]
    if film_title:
        title_words = {word.lower() for word in content_words(film_title)}
        present = {word.lower() for word in [*prefix, *words(question)]}
        if not title_words <= present:
            prefix.insert(0, one_line(film_title))
    if not prefix:
        return question
    return " ".join([*prefix, question.strip()])


def is_follow_up(question: str) -> bool:
    """Whether `question` needs the conversation to be understood (see `condense_heuristic`)."""
    lowered = [word.lower() for word in words(question)]
    if not lowered:
        return False
    if len(lowered) <= 2 or not content_words(question):
        return True
    if any(tuple(lowered[: len(opener)]) == opener for opener in _FOLLOW_UP_OPENERS):
        return True
    if _BACK_REFERENCES.intersection(lowered):
        return True
    for position, word in enumerate(lowered):
        if word in _DEMONSTRATIVES:
            following = lowered[position + 1] if position + 1 < len(lowered) else None
            if following is None or following in _REFERRING_NOUNS or len(lowered) <= 6:
                return True
    return False


CONDENSE_PROMPT = """You turn the user's latest message in a conversation about films into a standalone search \
query for a database of film reports.
- Replace pronouns and references ("it", "he", "that film", "the ending") with what they refer to in the \
conversation.
- Keep film titles and names exactly as written. Keep it short: one line, no more than about 20 words.
- If the message already stands on its own, return it unchanged.
- Reply with the query only: no quotes, no explanation, and do not answer the question."""

_CONDENSE_HISTORY_MESSAGES = 6
_CONDENSE_MESSAGE_CHARS = 600


def condense_messages(*, question: str, history: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """The chat messages asking a language model to rewrite `question` as a standalone search query."""
    lines = []
    for role, content in history[-_CONDENSE_HISTORY_MESSAGES:]:
        if role not in ("user", "assistant") or not content.strip():
            continue
        text = truncate(one_line(remove_citation_markers(content)), _CONDENSE_MESSAGE_CHARS)
        lines.append(f"{'User' if role == 'user' else 'Assistant'}: {text}")
    conversation = "\n".join(lines) or "(none)"
    prompt = f"Conversation:\n{conversation}\n\nLatest message: {one_line(question)}\n\nStandalone search query:"
    return [{"role": "system", "content": CONDENSE_PROMPT}, {"role": "user", "content": prompt}]
