"""Prompt templates: defaults shipped in ``prompts/``, per-account overrides in ``AIPrompt``.

Templates use ``$name`` placeholders (``string.Template``) so JSON examples need no escaping. An
override may only use the variables its function provides; a broken one is refused when saved, and
if one slips through it fails the call with a message saying how to reset it, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from string import Template

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.exceptions import FieldError, ValidationFailed
from storage.models import AIPrompt, AuthorProfile, Strategy

SYSTEM = "system"
PROMPT_VARIABLES: dict[str, frozenset[str]] = {
    SYSTEM: frozenset({"language", "tone", "author_notes", "strategy_notes"}),
    "auto_cluster": frozenset({"keywords", "site", "sector"}),
    "generate_ideas": frozenset(
        {"count", "cluster_name", "cluster_description", "keywords", "site", "sector"}
    ),
    "generate_content": frozenset(
        {
            "title",
            "description",
            "primary_keyword",
            "secondary_keywords",
            "word_count",
            "content_type",
            "content_structure",
            "site",
        }
    ),
    "generate_image_prompts": frozenset({"title", "headings", "excerpt", "max_images", "image_style"}),
}


def default_prompt(prompt_type: str) -> str:
    if prompt_type not in PROMPT_VARIABLES:
        raise ValidationFailed.single(
            "prompt_type", f"unknown prompt {prompt_type!r}; one of {', '.join(PROMPT_VARIABLES)}"
        )
    return resources.files("prompts").joinpath(f"{prompt_type}.txt").read_text(encoding="utf-8")


def template_problems(prompt_type: str, text: str) -> list[str]:
    template = Template(text)
    if not template.is_valid():
        return ["has a '$' that is not a placeholder; write '$$' for a literal dollar sign"]
    unknown = set(template.get_identifiers()) - PROMPT_VARIABLES[prompt_type]
    if unknown:
        allowed = ", ".join(f"${v}" for v in sorted(PROMPT_VARIABLES[prompt_type]))
        return [f"uses unknown variable(s) {', '.join(f'${u}' for u in sorted(unknown))}; allowed: {allowed}"]
    return []


def validate_template(prompt_type: str, text: str) -> None:
    default_prompt(prompt_type)
    if not text.strip():
        raise ValidationFailed.single("prompt_value", "cannot be empty")
    if problems := template_problems(prompt_type, text):
        raise ValidationFailed([FieldError("prompt_value", p) for p in problems])


@dataclass
class PromptSet:
    """Everything one account's prompts need, loaded once per AI run."""

    overrides: dict[str, str] = field(default_factory=dict)
    language: str = "English"
    tone: str = "clear, helpful and professional"
    author_notes: str = ""
    strategy_notes: str = ""

    def _template(self, prompt_type: str) -> str:
        text = self.overrides.get(prompt_type) or default_prompt(prompt_type)
        if problems := template_problems(prompt_type, text):
            raise ValidationFailed(
                [FieldError("prompt_value", p) for p in problems],
                message=f"Your custom {prompt_type} prompt is broken ({problems[0]}). Fix it or run "
                f"prompts.reset_to_default for {prompt_type}.",
            )
        return text

    def render(self, prompt_type: str, variables: dict[str, object]) -> tuple[str, str]:
        """Return (system, user) prompts; every variable the function provides is filled."""
        system = Template(self._template(SYSTEM)).safe_substitute(
            language=self.language,
            tone=self.tone,
            author_notes=self.author_notes,
            strategy_notes=self.strategy_notes,
        )
        user = Template(self._template(prompt_type)).safe_substitute(
            {k: str(v) for k, v in variables.items()}
        )
        return system, user


async def load_prompt_set(session: AsyncSession, sector_id: int | None = None) -> PromptSet:
    overrides = {
        p.prompt_type: p.prompt_value
        for p in (await session.scalars(select(AIPrompt).where(AIPrompt.is_active))).all()
    }
    prompts = PromptSet(overrides=overrides)
    author = await session.scalar(
        select(AuthorProfile).where(AuthorProfile.is_active).order_by(AuthorProfile.id).limit(1)
    )
    if author is not None:
        prompts.language, prompts.tone = _language_name(author.language), author.tone
        if author.description:
            prompts.author_notes = f"\nAuthor profile ({author.name}): {author.description}"
    strategy = await session.scalar(
        select(Strategy)
        .where(Strategy.is_active, (Strategy.sector_id == sector_id) | Strategy.sector_id.is_(None))
        .order_by(Strategy.sector_id.is_(None), Strategy.id)
        .limit(1)
    )
    if strategy is not None and strategy.description:
        prompts.strategy_notes = f"\nContent strategy ({strategy.name}): {strategy.description}"
    return prompts


_LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "sv": "Swedish",
    "ja": "Japanese",
}


def _language_name(code: str) -> str:
    return _LANGUAGES.get(code.lower().split("-")[0], code)
