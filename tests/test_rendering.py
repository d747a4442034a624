"""The answer as HTML: Markdown rendered, then sanitised, with citations as links."""

from chat.rendering import render_answer

TABLE = """Two films:

| Film | Year |
| --- | ---: |
| **Vertigo** [3] | 1958 |
| <script>alert(1)</script> | 1941 |
"""


def test_a_markdown_table_renders_as_a_table_with_its_citations_linked():
    html = render_answer(TABLE, section_urls={3: "/movies/vertigo/#section-3"})
    assert html == (
        "<p>Two films:</p>\n"
        '<table>\n<thead>\n<tr>\n<th>Film</th>\n<th class="align-right">Year</th>\n</tr>\n</thead>\n'
        "<tbody>\n<tr>\n"
        '<td><strong>Vertigo</strong> <a href="/movies/vertigo/#section-3" class="cite" data-section="3" '
        'rel="noopener">[3]</a></td>\n'
        '<td class="align-right">1958</td>\n</tr>\n<tr>\n'
        "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>\n"
        '<td class="align-right">1941</td>\n</tr>\n</tbody>\n</table>'
    )


def test_table_markup_written_as_html_stays_text():
    html = render_answer('<td style="color:red" onclick="x()">cell</td>', section_urls={})
    assert html == '<p>&lt;td style="color:red" onclick="x()"&gt;cell&lt;/td&gt;</p>'
