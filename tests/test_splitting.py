from reports.embeddings import MAX_TOKENS, get_embedder
from reports.ingest import draft_sections
from reports.splitting import split_into_chunks, split_sentences


def test_it_splits_sentences_but_not_initials_or_abbreviations():
    text = "Nosferatu is a 1922 film by F. W. Murnau. It stars Max Schreck as Count Orlok. Dr. Mabuse is another!"
    assert split_sentences(text) == [
        "Nosferatu is a 1922 film by F. W. Murnau.",
        "It stars Max Schreck as Count Orlok.",
        "Dr. Mabuse is another!",
    ]


def test_paragraph_breaks_end_sentences():
    assert split_sentences("First paragraph\nSecond one. Third") == ["First paragraph", "Second one.", "Third"]


def test_chunks_respect_the_budget_and_lose_no_words():
    words = lambda text: len(text.split())  # noqa: E731
    text = " ".join(f"Sentence number {n} has exactly seven words." for n in range(30))
    chunks = split_into_chunks(text, budget=40, count_tokens=words)
    assert all(words(chunk) <= 40 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()
    assert len(chunks) == 6


def test_a_sentence_longer_than_the_budget_is_cut_between_words():
    chunks = split_into_chunks("one two three four five six seven.", budget=3, count_tokens=lambda t: len(t.split()))
    assert chunks == ["one two three", "four five six", "seven."]


def test_long_real_text_becomes_sections_the_model_reads_whole(sample_movies):
    embedder = get_embedder()
    movie = max(sample_movies.values(), key=lambda m: len(m.source_text))
    drafts = draft_sections(movie.title, movie.source_text, count_tokens=embedder.count_tokens)
    assert len(drafts) > 1
    for draft in drafts:
        assert embedder.count_tokens(f"{movie.title}. {draft.heading}. {draft.content}") <= MAX_TOKENS
    assert " ".join(d.content for d in drafts).split() == movie.source_text.split()
    assert [d.heading for d in drafts][:2] == ["Overview", "Overview, part 2"]


def test_word_pieces_of_text_joined_by_spaces_add_up(sample_movies):
    # What split_into_chunks relies on to count each sentence once.
    count = get_embedder().count_tokens
    sentences = split_sentences(sample_movies["Pyaasa"].source_text)
    assert len(sentences) > 3
    assert count(" ".join(sentences)) == sum(count(s) - count("") for s in sentences) + count("")
    assert count("") == 2
