"""Take the README's screenshots with the real app: uvicorn serving flickora on the development database (run
`make run` once first, so the films are imported), the fake OpenRouter server (benchmarks/fake_llm.py) streaming a
scripted answer, and Debian's Chromium driven by Playwright.

    .venv/bin/python scripts/screenshots.py            # docs/film-page.png, docs/all-films-chat.png
    .venv/bin/python scripts/screenshots.py --phone    # also the 360 px wide versions (docs/*-phone.png)

The conversations it starts are ordinary anonymous ones in the development database.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
FILM = "vertigo"
FILM_QUESTION = "What is Vertigo about, and how was it received?"
ALL_QUESTION = "A film about a samurai or a detective?"


def film_answer(hits: list) -> list[str]:
    """A plausible answer citing the sections retrieval returns for the question, cut into stream tokens."""
    ids = [hit.section_id for hit in hits] or [0]
    text = (
        '**Vertigo** (1958) is Alfred Hitchcock\'s psychological thriller about John "Scottie" Ferguson, a San '
        f"Francisco detective forced into early retirement by his fear of heights [{ids[0]}]. Hired to follow an old "
        "friend's wife, Madeleine, he falls in love with her, and the story turns on obsession, loss and a second "
        f"woman who looks exactly like her [{ids[min(1, len(ids) - 1)]}].\n\n"
        "Its first reception was mixed, but its reputation grew over the decades: critics now count it among the "
        f"greatest films ever made [{ids[-1]}]."
    )
    return _tokens(text)


def all_films_answer(hits: list) -> list[str]:
    """One line per film retrieval found: the first sentence of its report (without asides), cited."""
    lines = ["Several films in the catalogue fit:", ""]
    seen: set[str] = set()
    for hit in hits:
        if hit.movie_title in seen or len(seen) == 3:
            continue
        seen.add(hit.movie_title)
        sentence = re.sub(r"\s*\([^)]*\)", "", hit.content.split(". ")[0]).rstrip(".")
        sentence = " ".join(sentence.split()[:24])
        if sentence.startswith(hit.movie_title):
            sentence = f"**{hit.movie_title}**{sentence[len(hit.movie_title) :]}"
        else:
            sentence = f"**{hit.movie_title}**: {sentence}"
        lines.append(f"- {sentence} [{hit.section_id}].")
    lines += ["", "Ask about any of them to go further."]
    return _tokens("\n".join(lines))


def _tokens(text: str) -> list[str]:
    """Words with their trailing spaces, the way a model streams them."""
    tokens, current = [], ""
    for ch in text:
        current += ch
        if ch in " \n":
            tokens.append(current)
            current = ""
    return tokens + ([current] if current else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--phone", action="store_true", help="also take 360 px wide screenshots")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1

    from benchmarks.fake_llm import FakeLLMServer

    with FakeLLMServer() as llm:
        os.environ.setdefault("DEBUG", "1")
        os.environ["DJANGO_SETTINGS_MODULE"] = "flickora.settings"
        os.environ.update(LLM_BASE_URL=llm.base_url, OPENROUTER_API_KEY="sk-or-screenshots", LLM_MODEL="demo/model")
        os.environ["RESPONSE_CACHE_TTL"] = "0"  # a fresh stream every time, never a cached answer
        import django

        django.setup()
        from flickora.asgi import application
        from reports.models import Movie
        from reports.search import search_all, search_movie
        from tests.live import LiveASGIServer

        movie = Movie.objects.filter(slug=FILM).first()
        if movie is None:
            print(f"No film {FILM!r} in the database: run `make run` once to import the films.", file=sys.stderr)
            return 1
        film_tokens = film_answer(search_movie(movie_id=movie.pk, query=FILM_QUESTION).hits)
        all_tokens = all_films_answer(search_all(query=ALL_QUESTION).hits)

        server = LiveASGIServer(application).start()
        try:
            args.out.mkdir(exist_ok=True)
            sizes = [("", 1280, 820)] + ([("-phone", 360, 780)] if args.phone else [])
            for suffix, width, height in sizes:
                shoot(server.url, llm, args.out, suffix, width, height, film_tokens, all_tokens)
        finally:
            server.stop()
    return 0


def shoot(base_url: str, llm, out: Path, suffix: str, width: int, height: int, film_tokens, all_tokens) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
        page = context.new_page()

        # The film page, mid-stream: sources shown, about half of the answer written.
        llm.set_scenario("scripted", tokens=film_tokens, delay=0.06)
        page.goto(f"/movies/{FILM}/")
        page.get_by_label("Your question").fill(FILM_QUESTION)
        page.get_by_label("Your question").press("Enter")
        body = page.locator(".msg-assistant .msg-body")
        expect(body).to_contain_text("falls in love", timeout=20_000)
        if width < 600:
            page.locator("#chat").scroll_into_view_if_needed()
        page.screenshot(path=str(out / f"film-page{suffix}.png"))
        expect(page.locator(".msg-assistant")).to_have_attribute("data-status", "complete", timeout=20_000)

        # The all-films chat, with a finished answer.
        llm.set_scenario("scripted", tokens=all_tokens, delay=0.01)
        page.goto("/chat/")
        page.get_by_label("Your question").fill(ALL_QUESTION)
        page.get_by_label("Your question").press("Enter")
        expect(page.locator(".msg-assistant")).to_have_attribute("data-status", "complete", timeout=20_000)
        time.sleep(0.3)  # let the final layout settle
        if width >= 600:
            page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(out / f"all-films-chat{suffix}.png"), full_page=width < 600)
        browser.close()
    print(f"wrote {out}/film-page{suffix}.png and {out}/all-films-chat{suffix}.png")


if __name__ == "__main__":
    raise SystemExit(main())
