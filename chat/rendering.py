"""The answer as safe HTML: Markdown (raw HTML off, GitHub's tables on) rendered by markdown-it-py, then sanitised
by nh3, with each citation turned into a link to its section."""

import re
from collections.abc import Mapping

import nh3
from markdown_it import MarkdownIt

from chat.citations import CITATION

_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image").enable("table")
)
ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h3", "h4", "sup", "hr"}
TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
# A table column's alignment comes as `style="text-align:..."`; it becomes a class (the Content-Security-Policy
# allows no inline style), and no other class is kept.
ALLOWED_ATTRIBUTES = {"a": {"href", "class", "data-section"}, "th": {"class"}, "td": {"class"}}
_ALIGNMENT = re.compile(r'<(th|td) style="text-align:(left|center|right)">')


def render_answer(text: str, *, section_urls: Mapping[int, str]) -> str:
    def link(match: re.Match[str]) -> str:
        parts = []
        for raw in match.group(1).split(","):
            section_id = int(raw)
            url = section_urls.get(section_id)
            parts.append(f"[\\[{section_id}\\]]({url})" if url else "")
        return "".join(parts)

    html = _markdown.render(CITATION.sub(link, text))
    html = re.sub(r'<a href="([^"]*#section-(\d+))">', r'<a href="\1" class="cite" data-section="\2">', html)
    html = _ALIGNMENT.sub(r'<\1 class="align-\2">', html)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS | TABLE_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_known_classes,
        url_schemes={"http", "https"},
        link_rel="noopener",
    ).strip()


_CLASSES = {"a": {"cite"}, "th": {"align-left", "align-center", "align-right"}}
_CLASSES["td"] = _CLASSES["th"]


def _keep_known_classes(tag: str, attribute: str, value: str) -> str | None:
    """Only the classes this module sets survive sanitising (a class written in the Markdown is dropped)."""
    if attribute != "class":
        return value
    return value if value in _CLASSES.get(tag, set()) else None
