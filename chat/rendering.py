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
# A table column's alignment comes as `style="text-align:..."`: no other style property is kept.
ALLOWED_ATTRIBUTES = {"a": {"href", "class", "data-section"}, "th": {"style"}, "td": {"style"}}


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
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS | TABLE_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        filter_style_properties={"text-align"},
        url_schemes={"http", "https"},
        link_rel="noopener",
    ).strip()
