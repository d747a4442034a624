"""Citations: section ids in square brackets, `[12]` or `[12, 15]`, written by the answerers, read back from an
answer, and turned into links by chat.rendering. One pattern for all of them."""

from __future__ import annotations

import re
from collections.abc import Iterable

CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# Markers side by side ("[12][15]", "[12] [15]") with the horizontal space before them: removed together.
_CITATION_RUN = re.compile(rf"(?:[ \t]*{CITATION.pattern})+")


def remove_citation_markers(text: str) -> str:
    """Drop every bracketed number group: in source text they are footnotes, and would read as citations."""
    return _CITATION_RUN.sub("", text)


def parse_citations(text: str, *, allowed_ids: Iterable[int]) -> list[int]:
    """The section ids cited in `text` (`[12]`, `[12, 15]`, `[12][15]`), in order of first appearance, without
    duplicates, leaving out ids not in `allowed_ids`."""
    allowed = set(allowed_ids)
    cited: dict[int, None] = {}
    for match in CITATION.finditer(text):
        for raw in match.group(1).split(","):
            section_id = int(raw)
            if section_id in allowed:
                cited.setdefault(section_id)
    return list(cited)


def strip_unknown_citations(text: str, *, allowed_ids: Iterable[int]) -> str:
    """`text` without the citations of ids outside `allowed_ids`: a group keeps its allowed ids, and a run of
    markers left with none goes away together with the space before it ("claim [99]." -> "claim.")."""
    allowed = set(allowed_ids)

    def keep_allowed(match: re.Match[str]) -> str:
        ids = [int(raw) for raw in match.group(1).split(",")]
        known = [section_id for section_id in ids if section_id in allowed]
        if known == ids:
            return match.group(0)
        return "[" + ", ".join(str(section_id) for section_id in known) + "]" if known else ""

    def strip_run(match: re.Match[str]) -> str:
        run = match.group(0)
        space = run[: run.index("[")]
        kept = CITATION.sub(keep_allowed, run[len(space) :])
        if kept == run[len(space) :]:
            return run
        kept = " ".join(kept.split())
        return space + kept if kept else ""

    return _CITATION_RUN.sub(strip_run, text)
