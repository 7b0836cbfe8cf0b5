"""The offline provider's templates: honest drafts where only a language model would do.

Everything here says what it is. Ideas and articles carry ``OFFLINE_LABEL``; placeholder images
carry their prompt written on them. Nothing pretends to be model output.
"""

from __future__ import annotations

import html
import io
import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

OFFLINE_LABEL = "Offline template draft — written from templates, not by a language model."
OFFLINE_MODEL = "offline"

_IDEA_PATTERNS = [
    (
        "The Complete Guide to {topic}",
        "guide",
        "cluster_hub",
        2500,
        "A hub page covering {topic} end to end, linking out to every supporting article.",
    ),
    (
        "{Primary}: What You Need to Know",
        "blog_post",
        "supporting_page",
        1500,
        "A focused article answering the main question behind '{primary}'.",
    ),
    (
        "How to Choose {topic}: A Step-by-Step Approach",
        "tutorial",
        "how_to",
        1800,
        "A practical walkthrough for readers deciding on {topic}.",
    ),
    (
        "{n} Common Questions About {topic}, Answered",
        "article",
        "listicle",
        1200,
        "Short answers to the questions people search for around {topic}.",
    ),
    (
        "{topic}: Options Compared",
        "article",
        "comparison",
        1600,
        "A side-by-side comparison of the main options within {topic}.",
    ),
]


def _title(text: str) -> str:
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in text.split())


def template_ideas(topic: str, keywords: Sequence[str], count: int) -> list[dict[str, object]]:
    """Idea drafts from fixed patterns, filled with the cluster's name and keywords."""
    primary = keywords[0] if keywords else topic
    ideas = []
    for i in range(count):
        title, content_type, structure, words, description = _IDEA_PATTERNS[i % len(_IDEA_PATTERNS)]
        fill = {"topic": _title(topic), "primary": primary, "Primary": _title(primary), "n": 7 + i}
        targets = list(keywords[i : i + 3]) or [primary]
        ideas.append(
            {
                "title": title.format(**fill)
                + (f" (part {i // len(_IDEA_PATTERNS) + 1})" if i >= len(_IDEA_PATTERNS) else ""),
                "description": f"{description.format(**fill)} {OFFLINE_LABEL}",
                "content_type": content_type,
                "content_structure": structure,
                "target_keywords": targets,
                "estimated_word_count": words,
            }
        )
    return ideas


def template_article(
    title: str, primary: str, secondary: Sequence[str], word_target: int, brief: str = ""
) -> dict[str, object]:
    """A structured HTML skeleton: H1, intro, one H2 per keyword, conclusion — each marked as a draft."""
    esc = html.escape
    sections = [k for k in secondary if k and k != primary][:8] or [primary]
    per_section = max(40, (word_target - 120) // (len(sections) + 2))
    parts = [
        f"<h1>{esc(title)}</h1>",
        f"<p><em>{esc(OFFLINE_LABEL)}</em></p>",
        f"<p>{esc(_filler(f'This article covers {primary}.', brief, per_section))}</p>",
    ]
    for keyword in sections:
        parts.append(f"<h2>{esc(_title(keyword))}</h2>")
        parts.append(f"<p>{esc(_filler(f'Write about {keyword} here.', '', per_section))}</p>")
    parts.append("<h2>Conclusion</h2>")
    parts.append(
        f"<p>{esc(_filler(f'Summarise what readers learned about {primary}.', '', per_section))}</p>"
    )
    return {
        "title": title,
        "meta_title": title[:60],
        "meta_description": f"{_title(primary)}: {brief or title}"[:155],
        "primary_keyword": primary,
        "secondary_keywords": list(sections if sections != [primary] else []),
        "html_content": "\n".join(parts),
    }


def _filler(lead: str, brief: str, words: int) -> str:
    """Placeholder prose of roughly ``words`` words, plainly saying it is a placeholder."""
    base = f"{lead} {brief}".strip()
    sentence = "Replace this placeholder paragraph with original writing for your readers."
    text = base
    while len(text.split()) < words:
        text += " " + sentence
    return text


def template_image_prompts(title: str, headings: Sequence[str], max_images: int) -> dict[str, object]:
    return {
        "featured_prompt": f"Editorial hero photograph illustrating '{title}', natural light, no text",
        "in_article_prompts": [
            f"Illustration for the section '{h}' of an article titled '{title}', clean style, no text"
            for h in list(headings)[:max_images]
        ],
    }


def placeholder_png(prompt: str, width: int, height: int) -> bytes:
    """A plain PNG with the prompt written on it, so nobody mistakes it for a generated picture."""
    image = Image.new("RGB", (width, height), (236, 239, 244))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(14, width // 40))
    draw.rectangle([8, 8, width - 9, height - 9], outline=(120, 130, 150), width=3)
    lines = ["PLACEHOLDER IMAGE (offline)", "", *textwrap.wrap(prompt, width=max(20, width // 22))[:12]]
    y = height // 8
    for line in lines:
        draw.text((width // 16, y), line, fill=(40, 48, 64), font=font)
        y += int(font.size * 1.5)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
