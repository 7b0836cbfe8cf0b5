"""Article HTML: sanitising, counting words, and the seed's content normaliser.

``normalize_content`` turns what a writer (or a model) hands in — plain text, markdown-ish text or
a whole HTML document — into an HTML fragment; ``sanitize_html`` then keeps only what an article
needs, so stored content is always safe to render.
"""

from __future__ import annotations

import html
import re

import nh3

ARTICLE_TAGS = frozenset(
    {
        *(f"h{n}" for n in range(1, 7)),
        "p",
        "br",
        "hr",
        "ul",
        "ol",
        "li",
        "a",
        "strong",
        "em",
        "b",
        "i",
        "sub",
        "sup",
        "blockquote",
        "code",
        "pre",
        "img",
        "figure",
        "figcaption",
        "table",
        "caption",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "th",
        "td",
    }
)
ARTICLE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
}
_CLEANER = nh3.Cleaner(
    tags=set(ARTICLE_TAGS),
    attributes={tag: set(names) for tag, names in ARTICLE_ATTRIBUTES.items()},
    clean_content_tags={"script", "style"},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
    strip_comments=True,
)

# Control characters other than tab and line breaks: invisible, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_control(text: str) -> str:
    return _CONTROL.sub("", text)


def sanitize_html(markup: str) -> str:
    """Keep the tags and attributes an article needs; scripts, styles, handlers and ``javascript:``
    links go, and every link gets ``rel="noopener noreferrer"``."""
    return _CLEANER.clean(strip_control(markup)).strip()


# --- word count --------------------------------------------------------------------------------

_DROPPED = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
# Tags that separate words when they sit between two (``<p>a</p><p>b</p>`` is two words); inline
# tags do not (``un<em>believ</em>able`` is one).
_BLOCK_TAG = re.compile(
    r"</?(?:h[1-6]|p|br|hr|ul|ol|li|blockquote|pre|img|figure|figcaption|table|caption|thead|tbody|"
    r"tfoot|tr|th|td|div|section|article|header|footer|aside|nav|main|dl|dt|dd|body|html|head|title)"
    r"\b[^>]*>",
    re.IGNORECASE,
)
_ANY_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"\w+(?:['\u2019.\-]\w+)*")  # \u2019: typographic apostrophe


def html_text(markup: str) -> str:
    """The visible text of ``markup``, blocks separated by spaces."""
    text = _BLOCK_TAG.sub(" ", _DROPPED.sub(" ", markup))
    return html.unescape(_ANY_TAG.sub("", text))


def word_count(markup: str) -> int:
    """Words of visible text (``don't``, ``e-mail`` and ``3.5`` are one word each); tags never count."""
    return len(_WORD.findall(html_text(markup)))


# --- normaliser --------------------------------------------------------------------------------

_BLOCK_HTML = re.compile(
    r"<(?:!doctype|html|head|body|h[1-6]|p|div|ul|ol|li|table|blockquote|pre|section|article|figure|hr|br)"
    r"\b",
    re.IGNORECASE,
)
_BODY = re.compile(r"<body\b[^>]*>(.*?)(?:</body\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_DOCUMENT_FRAME = re.compile(
    r"<!doctype[^>]*>|<head\b.*?</head\s*>|</?html\b[^>]*>|</?body\b[^>]*>", re.IGNORECASE | re.DOTALL
)
_INLINE_HTML = re.compile(
    r"</?(?:a|strong|em|b|i|u|s|sub|sup|code|br|mark|small|span)\b[^<>]*>|&(?:#\d+|#x[0-9a-f]+|\w+);",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?(.*)$")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _extract_body_content(markup: str) -> str:
    """The inside of ``<body>`` when given a whole document; the fragment itself otherwise."""
    match = _BODY.search(markup)
    inner = match.group(1) if match else markup
    return _DOCUMENT_FRAME.sub("", inner).strip()


def _escape(text: str) -> str:
    """Escape plain text, keeping inline HTML and entities the way markdown passes them through."""
    out, last = [], 0
    for match in _INLINE_HTML.finditer(text):
        out += [html.escape(text[last : match.start()], quote=False), match.group(0)]
        last = match.end()
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


_INLINE_RULES = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__"), None),
    (re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])|(?<![_\w])_(?=\S)(.+?)(?<=\S)_(?![_\w])"), None),
    (re.compile(r"\[([^\]]+)\]\(((?:https?://|mailto:|/)[^)\s]*)\)"), r'<a href="\2">\1</a>'),
)


def _inline(text: str) -> str:
    text = _escape(text.strip())
    code, strong, em, link = _INLINE_RULES
    text = code[0].sub(code[1], text)
    text = strong[0].sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", text)
    text = em[0].sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)
    return link[0].sub(link[1], text)


def _text_to_html(text: str) -> str:
    """Plain text or light markdown to HTML: headings, lists, quotes, rules, code, paragraphs."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""
    quote: list[str] = []

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            blocks.append(f"<p>{' '.join(_inline(line) for line in paragraph)}</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{list_tag}>{''.join(f'<li>{_inline(i)}</li>' for i in items)}</{list_tag}>")
            items.clear()
            list_tag = ""
        if quote:
            blocks.append(f"<blockquote><p>{' '.join(_inline(line) for line in quote)}</p></blockquote>")
            quote.clear()

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if fence := _FENCE.match(line):
            flush()
            code: list[str] = []
            while i < len(lines) and not lines[i].strip().startswith(fence.group(1)):
                code.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end)
            blocks.append(f"<pre><code>{html.escape(chr(10).join(code), quote=False)}</code></pre>")
        elif not line.strip():
            flush()
        elif heading := _HEADING.match(line.strip()):
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif _RULE.match(line):
            flush()
            blocks.append("<hr>")
        elif item := _BULLET.match(line) or _NUMBERED.match(line):
            tag = "ul" if item.re is _BULLET else "ol"
            if (items and list_tag != tag) or paragraph or quote:
                flush()
            list_tag = tag
            items.append(item.group(1))
        elif quoted := _QUOTE.match(line):
            if paragraph or items:
                flush()
            quote.append(quoted.group(1))
        else:
            if items or quote:
                flush()
            paragraph.append(line)
    flush()
    return "\n".join(blocks)


def normalize_content(text_or_html: str) -> str:
    """The seed's ``normalize_content``: HTML stays HTML (a whole document is cut down to its body);
    plain text becomes paragraphs, and markdown-ish headings, lists, quotes and code become tags."""
    text = strip_control(text_or_html).strip()
    if not text:
        return ""
    if _BLOCK_HTML.search(text):
        return _extract_body_content(text)
    return _text_to_html(text)
