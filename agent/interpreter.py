"""Offline interpreter: a chat message becomes one registry action call, deterministically, with no model.

The chat agent uses it when no LLM is configured (wired into the graph as a fake chat model that emits
tool calls). Everything it knows about actions is read from the registry, so an action is reachable the
moment it is registered:

* **Slash grammar** -- ``/igny8 <group> <verb> [positional …] key=value …`` (the ``/igny8`` prefix is
  optional: ``/keywords list status=active``). Group and verb are the two halves of the action name
  (``import-csv`` or ``import_csv``); keys are input field names (``site-id`` too) plus the short aliases
  ``site=``/``sector=``/``ids=``; values are coerced by the field's pydantic type. Positional values fill
  the action's required fields (other than site/sector) in order, else its id list, else ``search``.
  The product's shortcuts (``cluster``, ``ideas``, ``write``, ``images``, ``credits``, ``link``,
  ``optimize``, ``publish`` …) name actions that may not be registered yet; then the reply says so.
* **Plain English** -- a verb table and a noun table (with synonyms) pick candidate actions; small
  extractors read names ("called Acme Blog"), ids ("4, 5 and 6"), filters ("volume over 1000"), enum
  words ("active"), site/sector references and search text. The first candidate the message fits wins,
  so "delete keyword 4" is ``keywords.delete`` and "delete keywords 4, 5 and 6" ``keywords.bulk_delete``.

Contract with the caller:

* Run ``action`` only when it is set and ``missing`` is empty. A ``reply`` next to a runnable action is
  a note to show first (an ignored ``account=``); with ``missing`` it is the question to ask.
* A site or sector given by *name* ("for site acme", ``site=acme``) comes back unresolved as
  ``args["site_name"]`` / ``args["sector_name"]``, never as ``site_id``: the caller resolves it inside the
  tenant (names are only unique per account) and replaces it by the id before invoking. A name counts
  as giving the site/sector, so it is not reported in ``missing`` and blocks the default.
* ``bytes`` fields (the CSV ``file``) come back as the path string; the caller reads the file.
* Tenancy comes from the caller: ``account``/``tenant`` arguments are dropped, never passed on.
* ``defaults`` (conversation context) fill *required* ``site_id``/``sector_id`` the message leaves out.
  The default sector is not used when the message names a different site (it belongs to another one).
"""

from __future__ import annotations

import json
import re
import shlex
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cache, lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from tools.registry import Action, registry

LQ, RQ = "\u201c", "\u201d"  # typographic quotes, for quoting the user's words back
CONTEXT_FIELDS = ("site_id", "sector_id")
ACCOUNT_KEYS = frozenset({"account", "account_id", "accountid", "tenant", "tenant_id", "tenantid"})
MAX_RANGE = 1000  # "1-5000" is more likely a typo than a request for five thousand ids
EXAMPLE = f"Try `/igny8 help`, or e.g. {LQ}cluster my keywords{RQ}."

# Shortcuts the product promises. Several name modules that may not exist yet; availability is read from
# the registry on every call, so e.g. ``linker.process`` works as soon as it is registered.
SHORTCUTS: dict[str, tuple[str, ...]] = {
    "cluster": ("keywords.auto_cluster",),
    "ideas": ("clusters.auto_generate_ideas",),
    "write": ("tasks.auto_generate_content",),
    "images": ("images.generate_images",),
    "credits": ("billing.balance",),
    "balance": ("billing.balance",),
    "whoami": ("accounts.me",),
    "import": ("keywords.import_csv",),
    "export": ("keywords.export_csv",),
    "link": ("linker.process", "linker.batch_process"),
    "optimize": ("optimizer.optimize",),
    "optimise": ("optimizer.optimize",),
    "publish": ("publisher.publish",),
}
MODULE_NAMES = {
    "link": "Internal linking (the linker module)",
    "optimize": "Content optimisation (the optimizer module)",
    "optimise": "Content optimisation (the optimizer module)",
    "publish": "Publishing (the publisher module)",
}

# --- English vocabulary ------------------------------------------------------------------------------


def _phrases(text: str) -> tuple[str, ...]:
    """A vocabulary list written as ``a|b|c``: one line per meaning reads better than one per word."""
    return tuple(p.strip() for p in text.split("|"))


# Verb category -> phrases. Longer phrases are tried first, so "get rid of" beats "get".
VERBS: dict[str, tuple[str, ...]] = {
    "show": _phrases(
        "show me|show|list|display|view|see|get me|get|fetch|find|search|look up|lookup|look for|browse|"
        "check|give me|tell me|what are|what is|what's|whats|what|which|how many|how much|do i have|"
        "are there|open"
    ),
    "delete": _phrases("get rid of|delete|remove|drop|erase|trash|purge|destroy|wipe"),
    "create": _phrases("set up|setup|create|add|new|make|register|insert"),
    "update": _phrases(
        "update|change|rename|edit|modify|set|mark|move|flag|archive|unarchive|activate|deactivate|"
        "enable|disable"
    ),
    "cluster": _phrases(
        "auto-cluster|auto cluster|autocluster|cluster|group|organise|organize|categorise|categorize"
    ),
    "generate": _phrases("come up with|generate|write|draft|brainstorm|suggest|produce|compose"),
    "import": _phrases("import|upload|load"),
    "export": _phrases("export|download"),
    "queue": _phrases("queue|schedule|send|turn|convert|promote"),
    "link": _phrases("internally link|interlink|link"),
    "optimize": _phrases("optimize|optimise|improve"),
    "publish": _phrases("publish|post|push"),
    "grant": _phrases("grant|give access|allow"),
    "revoke": _phrases("revoke|take away|remove access|disallow"),
}
# Verbs recognised away from the start of a sentence ("I need you to delete keyword 4"); words that are
# also common nouns ("cluster", "post", "link", "draft", "group", "set") only count at the start.
ANYWHERE_VERBS = frozenset(
    _phrases(
        "delete|remove|create|generate|write|import|export|upload|download|rename|update|publish|optimize|"
        "optimise|brainstorm|list|show|display|auto-cluster|autocluster|queue|archive|activate|deactivate|"
        "mark|grant|revoke"
    )
)
# Verbs that imply a new state: (bool field value, enum value) to set.
STATE_VERBS: dict[str, tuple[bool | None, str | None]] = {
    "archive": (None, "archived"),
    "unarchive": (None, "active"),
    "activate": (True, "active"),
    "enable": (True, "active"),
    "deactivate": (False, None),
    "disable": (False, None),
}
# Extra ways to name a registry group; every group is also known by its own name, singular and plural.
NOUN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "keywords": _phrases("kw|kws|search terms|search term"),
    "clusters": _phrases("topic clusters|topic cluster|topics|topic"),
    "ideas": _phrases("content ideas|content idea|article ideas|article idea"),
    "tasks": _phrases("writer tasks|writer task|writing tasks|writing task"),
    "content": _phrases(
        "article|articles|post|posts|blog posts|blog post|contents|pieces of content|piece of content"
    ),
    "images": _phrases("picture|pictures|photo|photos|image records|image record"),
    "sites": _phrases("website|websites"),
    "sectors": _phrases("niche|niches"),
    "users": _phrases("team members|team member|teammates|members"),
    "author_profiles": _phrases("authors|author"),
    "strategies": _phrases("content strategies|content strategy"),
}
# Nouns that name one action rather than a group.
PSEUDO_NOUNS: dict[str, tuple[str, ...]] = {
    "balance": _phrases("credits|credit|balance|credit balance|credits left|billing"),
    "usage": _phrases("usage|credit usage|ai usage|spending|spend|spent|credits used"),
    "transactions": _phrases("transactions|transaction|credit history|purchases|refunds"),
    "me": _phrases("who am i|whoami|my account|my plan|my role"),
    "image_prompts": _phrases("image prompts|image prompt|image descriptions"),
}
PSEUDO_ACTIONS = {
    "balance": "billing.balance",
    "usage": "billing.usage",
    "transactions": "billing.transactions",
    "me": "accounts.me",
}
# What "generate …" / "write …" makes, by the noun it is about.
GENERATES = {
    "ideas": "clusters.auto_generate_ideas",
    "clusters": "keywords.auto_cluster",
    "content": "tasks.auto_generate_content",
    "tasks": "tasks.auto_generate_content",
    "images": "images.generate_images",
    "image_prompts": "content.generate_image_prompts",
}
# For "show/delete/create/update <noun>": verbs of the noun's group to try, in order.
CRUD_VERBS = {
    "show": ("list", "get"),
    "delete": ("delete", "bulk_delete"),
    "create": ("create",),
    "update": ("update", "bulk_update_status", "bulk_update"),
}
# Slash verbs people type that are not the registry's.
VERB_SYNONYMS = {
    "ls": "list",
    "all": "list",
    "show": "show",
    "view": "show",
    "rm": "delete",
    "remove": "delete",
    "del": "delete",
    "add": "create",
    "new": "create",
    "edit": "update",
    "set": "update",
    "change": "update",
}
# Words for numeric filter fields (``volume_min`` …) and ordering.
METRIC_WORDS = {
    "volume": ("search volume", "volume", "searches"),
    "difficulty": ("keyword difficulty", "difficulty", "kd"),
}
ORDER_WORDS = {
    "search volume": "volume",
    "volume": "volume",
    "difficulty": "difficulty",
    "kd": "difficulty",
    "name": "name",
    "title": "title",
    "keyword": "keyword",
    "date": "created_at",
    "created": "created_at",
    "creation date": "created_at",
    "word count": "word_count",
}
FIELD_WORDS = {
    "site_id": "the site",
    "sector_id": "the sector",
    "file": "the CSV file",
    "name": "the name",
    "title": "the title",
    "idea_title": "the idea's title",
    "keyword": "the keyword",
    "email": "the email address",
    "credits": "how many credits",
    "prompt_type": "which prompt",
    "prompt_value": "the prompt text",
    "integration_type": "which integration",
    "config": "the settings",
    "user_id": "the user",
    "status": "the status",
    "attributes": "the attributes",
    "clusters": "the clusters",
}
GROUP_SINGULAR_WORDS = {"content": "piece of content", "images": "image record"}
FILLER = re.compile(
    r"^(?:(?:please|pls|plz|kindly|hey|hi|hello|ok|okay|so|now|then|and|also|just|@?igny8[,:]?|can you|"
    r"could you|would you|will you|can i|could i|i want to|i wanna|i'd like to|i would like to|"
    r"i need to|i need you to|help me|let's|lets|let me|go ahead and|try to|i want|i need)\b[\s,]*)+",
    re.I,
)
HELP = re.compile(
    r"^(?:help(?!\s+me\b)|\?|commands|menu|what can you do|what do you do|how does this work)"
    r"(?:\s+(?:with|on|for|about))?\s*(?P<topic>.*)$",
    re.I,
)
GREETING = re.compile(
    r"^(?:hi|hello|hey|good (?:morning|afternoon|evening))(?:[\s,]+(?:there|@?igny8|bot|all|team))?$", re.I
)
HOW_TO = re.compile(r"^(?:how (?:do|can) (?:i|you)|how to)\s+(?P<rest>.+)$", re.I)

SEP = " \u00a6 "  # replaces explained spans, so later patterns never join words across them
_STOP = (
    r"(?:to|in|into|for|on|under|with|at|from|site|website|sector|niche|status|as|using|please|then|by|"
    r"via|where|that|which|containing|matching|sorted|ordered)"
)
_WORD = rf"(?!{_STOP}\b)[^\s\",;\u00a6=']+(?:'[^\s\",;\u00a6=']+)?"
NAME = rf"(?:\"[^\"]+\"|'[^']+'|{_WORD}(?:\s+{_WORD})*)"
_NUM = r"#?\d+"
_SEP_NUM = r"(?:\s*,\s*(?:and\s+)?|\s+(?:and|&)\s+|\s*[-\u2013]\s*|\s+(?:to|through|thru)\s+|\s+)"
NUMLIST = rf"{_NUM}(?:{_SEP_NUM}{_NUM})*\b"
METRIC_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(k|m)?\b"
PATH = r"(?<![\w@])(?P<v>(?:~?/|\./)?(?:[\w.-]+/)*[\w.-]+\.(?:csv|tsv|txt))\b"
EMAIL = r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
NOT_A_NAME = r"(?!(?:this|that|the|my|a|an|it|its|id|ids|called|named|\d)\b)"


@dataclass(frozen=True)
class Interpretation:
    """One message, understood: what to run with which arguments, what is still unknown, what to say."""

    action: str | None
    args: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    reply: str | None = None


class _Problem(Exception):
    """A message that names something but cannot be run as written; the text is the reply."""


class _Grammar(_Problem):
    """The message is not slash grammar; plain English may still understand it."""


# --- the registry, viewed for parsing ----------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    actions: Mapping[str, Action]
    groups: Mapping[str, Mapping[str, Action]]  # group -> verb -> action
    nouns: Mapping[str, str]  # phrase -> group or pseudo noun
    noun_re: re.Pattern[str]
    ref_re: re.Pattern[str]  # a group noun followed by ids: "keywords 4, 5 and 6"


@cache
def _load_actions() -> None:
    """Make sure the built-in actions are registered, whoever imported us first."""
    from tools import load_actions

    load_actions()


def _catalog() -> _Catalog:
    """The current registry; rebuilt when actions are added, so new modules need no edit here."""
    _load_actions()
    return _build_catalog(tuple(registry.names()))


@lru_cache(maxsize=8)
def _build_catalog(names: tuple[str, ...]) -> _Catalog:
    actions = {name: registry.get(name) for name in names}
    groups: dict[str, dict[str, Action]] = {}
    for name, act in actions.items():
        group, verb = name.split(".", 1)
        groups.setdefault(group, {})[verb] = act
    nouns: dict[str, str] = {}
    for group in groups:
        for form in (group, _singular(group)):
            nouns[form.replace("_", " ")] = group
    for group, phrases in NOUN_SYNONYMS.items():
        nouns.update(dict.fromkeys(phrases, group))
    group_nouns = "|".join(_alternatives(nouns))
    for pseudo, phrases in PSEUDO_NOUNS.items():
        nouns.update(dict.fromkeys(phrases, pseudo))
    return _Catalog(
        actions=actions,
        groups=groups,
        nouns=nouns,
        noun_re=re.compile(rf"\b(?:{'|'.join(_alternatives(nouns))})\b", re.I),
        ref_re=re.compile(
            rf"\b(?P<noun>{group_nouns})\s*(?:ids?\b|numbers?\b|no\.|#|:)?\s*(?P<nums>{NUMLIST})", re.I
        ),
    )


def _alternatives(phrases: Iterable[str]) -> list[str]:
    """Regex alternatives, longest first, so "content ideas" wins over "content" at the same place."""
    return [re.escape(p).replace(r"\ ", r"\s+") for p in sorted(phrases, key=len, reverse=True)]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _group_of(token: str, cat: _Catalog) -> str | None:
    key = token.lower().replace("-", "_")
    for candidate in (key, key + "s", _singular(key), key.removesuffix("es")):
        if candidate in cat.groups:
            return candidate
    return None


def _verb_of(group: str, token: str, has_values: bool, cat: _Catalog) -> str | None:
    """Resolve a typed verb: exact, synonym, ``auto_``/``bulk_`` form, unique prefix, unique word."""
    verbs = cat.groups[group]
    verb = token.lower().replace("-", "_")
    if verb in verbs:
        return verb
    verb = VERB_SYNONYMS.get(verb, verb)
    if verb == "show":
        verb = "get" if has_values and "get" in verbs else "list"
    for candidate in (verb, f"auto_{verb}", f"bulk_{verb}"):
        if candidate in verbs:
            return candidate
    for matches in (
        [v for v in verbs if v.startswith(verb)],
        [v for v in verbs if verb in v.split("_")],
    ):
        if len(matches) == 1:
            return matches[0]
    return None


# --- input fields --------------------------------------------------------------------------------------


def _base(annotation: Any) -> Any:
    """The type under ``Optional[...]`` and ``Annotated[...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            inner = [a for a in get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _kind(info: FieldInfo) -> str:
    """How a value is typed in chat: file, ids, strs, list, json, choice, bool, int, float, datetime, str."""
    t = _base(info.annotation)
    origin = get_origin(t)
    if t is bytes:
        return "file"
    if origin is list:
        item = _base(get_args(t)[0]) if get_args(t) else Any
        return "ids" if item is int else "strs" if item is str else "list"
    if origin is dict or t is dict or (isinstance(t, type) and issubclass(t, BaseModel)):
        return "json"
    if origin is Literal or (isinstance(t, type) and issubclass(t, Enum)):
        return "choice"
    simple = {bool: "bool", int: "int", float: "float", datetime: "datetime"}
    return simple.get(t, "str")


def _choices(info: FieldInfo) -> tuple[str, ...]:
    t = _base(info.annotation)
    if get_origin(t) is Literal:
        return tuple(str(v) for v in get_args(t))
    if isinstance(t, type) and issubclass(t, Enum):
        return tuple(str(m.value) for m in t)
    return ()


def _fields(act: Action) -> dict[str, FieldInfo]:
    return dict(act.input_model.model_fields)


def _group(act: Action) -> str:
    return act.name.split(".", 1)[0]


def _id_lists(act: Action) -> list[str]:
    return [n for n, f in _fields(act).items() if _kind(f) == "ids" and (n == "ids" or n.endswith("_ids"))]


def _primary(act: Action) -> str | None:
    """The field bare ids go to: ``id``, ``ids``, the group's own id list, or the one required id list."""
    fields = _fields(act)
    if "id" in fields:
        return "id"
    lists = _id_lists(act)
    if "ids" in lists:
        return "ids"
    own = f"{_singular(_group(act))}_ids"
    if own in lists:
        return own
    required = [n for n in lists if fields[n].is_required()]
    return required[0] if len(required) == 1 else None


def _primary_nouns(act: Action) -> set[str]:
    """Groups whose ids are this action's own: its group, and ``ideas`` for ``tasks.create_from_ideas``."""
    nouns = {_group(act)}
    if "_from_" in act.name:
        nouns.add(act.name.rsplit("_from_", 1)[1])
    return nouns


def _positional(act: Action) -> list[str]:
    """Fields that slash values without ``key=`` fill, in order."""
    fields = _fields(act)
    required = [n for n, f in fields.items() if f.is_required() and n not in CONTEXT_FIELDS]
    if required:
        return required
    if primary := _primary(act):
        return [primary]
    return ["search"] if "search" in fields else []


def _name_field(act: Action, verb: str | None) -> str | None:
    """The field a name in the message fills: a new object's required text, or the renamed field."""
    fields = _fields(act)
    if verb == "create":
        for name, info in fields.items():
            if info.is_required() and name not in CONTEXT_FIELDS and _kind(info) == "str":
                return name
        return None
    return next((n for n in ("name", "title", "idea_title", "keyword") if n in fields), None)


@lru_cache(maxsize=512)
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation)


def _coerce(act: Action, name: str, raw: Any) -> Any:
    """Validate one value with the field's own type and constraints; return it JSON-shaped."""
    info = _fields(act)[name]
    kind = _kind(info)
    value = raw.strip() if isinstance(raw, str) else raw
    if kind == "file":
        if not value:
            raise _Problem(f"`{name}` needs a file path.")
        return value
    if isinstance(value, str):
        value = _parse_text_value(name, kind, value)
    try:
        adapter = _adapter(act.input_model, name)
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        if choices := _choices(info):
            message = f"use one of {', '.join(choices)}"
        raise _Problem(f"`{name}={raw}` is not valid: {message}.") from None


def _parse_text_value(name: str, kind: str, value: str) -> Any:
    if kind == "ids":
        return _numbers(value) if re.fullmatch(rf"\s*{NUMLIST}\s*,?\s*", value) else value.split(",")
    if kind == "strs":
        return [part.strip() for part in value.split(",") if part.strip()]
    if kind == "list" and not value.startswith("["):
        return [part.strip() for part in value.split(",") if part.strip()]  # models' own shorthands
    if kind in ("json", "list"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _Problem(f"`{name}` takes JSON, e.g. {name}='[...]'.") from None
    if kind == "choice":
        return value.lower().replace("-", "_").replace(" ", "_")
    if kind == "int":
        return value.lstrip("#").replace(",", "")
    return value


def _numbers(text: str) -> list[int]:
    """ "4, 5 and 6" -> [4, 5, 6]; "1-3" and "1 to 3" are ranges."""
    out: list[int] = []
    in_range = False
    for token in re.findall(r"\d+|[-\u2013]|\bto\b|\bthrough\b|\bthru\b", text, re.I):
        if not token.isdigit():
            in_range = bool(out)
            continue
        number = int(token)
        if in_range:
            start = out[-1]
            if not 0 < number - start <= MAX_RANGE:
                raise _Problem(f"{LQ}{start}-{number}{RQ} is not a range of ids I can expand.")
            out.extend(range(start + 1, number + 1))
        else:
            out.append(number)
        in_range = False
    return list(dict.fromkeys(out))


# --- keys -----------------------------------------------------------------------------------------------


def _resolve_key(act: Action, raw_key: str, value: str) -> str | None:
    """Map a typed key to a field (``site-id``, ``site``, ``ids`` …); None for account keys (dropped)."""
    key = raw_key.lower().replace("-", "_")
    fields = _fields(act)
    if key in ACCOUNT_KEYS:
        return None
    if key in fields:
        return key
    if key in ("site", "sector", "site_name", "sector_name") and f"{key.split('_')[0]}_id" in fields:
        base = key.split("_")[0]
        is_id = key in ("site", "sector") and re.fullmatch(r"#?\d+", value.strip())
        return f"{base}_id" if is_id else f"{base}_name"
    lists = _id_lists(act)
    if key == "ids" and len(lists) == 1:
        return lists[0]
    for candidate in (f"{key}_id", f"{key}_ids", f"{_singular(key)}_ids", f"{_singular(key)}_id"):
        if candidate in fields:
            return candidate
    suffixed = [n for n in fields if n.endswith(f"_{key}")]
    if len(suffixed) == 1:
        return suffixed[0]
    options = ", ".join(fields) or "none"
    extra = " (site= and sector= work too)" if "site_id" in fields or "sector_id" in fields else ""
    raise _Problem(f"`{raw_key}` is not an option of `{_usage(act)}`. Valid options: {options}{extra}.")


def _put(act: Action, args: dict[str, Any], key: str, raw: Any) -> None:
    """Set one argument; a second, different value for the same field is a question, not a guess."""
    value = str(raw).strip().strip("\"'") if key.endswith("_name") else _coerce(act, key, raw)
    if key in args and args[key] != value:
        raise _Problem(f"You gave `{key}` twice ({args[key]} and {value}); which one?")
    args[key] = value


def _ignored(key: str, value: str) -> str:
    return f"(I ignored `{key}={value}`: you always act in your own account.)"


# --- slash grammar --------------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        raise _Problem("A quote is not closed; put values with spaces in matching quotes.") from None


def _parse_slash(text: str, defaults: Mapping[str, Any] | None) -> Interpretation:
    """``<group> <verb> …`` or ``<shortcut> …`` (the ``/igny8`` prefix already removed)."""
    cat = _catalog()
    tokens = _tokens(text)
    if not tokens or tokens[0].lower() in ("help", "?", "h", "-h", "--help"):
        return Interpretation(None, reply=help_text(" ".join(tokens[1:]) or None))
    head = tokens[0].lower()
    group = _group_of(head, cat)
    if group and len(tokens) > 1:
        has_values = len(tokens) > 2 and "=" not in tokens[2]
        if verb := _verb_of(group, tokens[1], has_values, cat):
            return _slash_action(cat.groups[group][verb], tokens[2:], defaults)
    if head in SHORTCUTS:
        registered = [n for n in SHORTCUTS[head] if n in cat.actions]
        if not registered:
            return Interpretation(None, reply=_unavailable(head))
        return _slash_action(cat.actions[_pick_shortcut(registered, tokens[1:])], tokens[1:], defaults)
    if group and len(tokens) == 1:
        return Interpretation(None, reply=help_text(group))
    if group and len(tokens) == 2:
        verbs = ", ".join(v.replace("_", "-") for v in cat.groups[group])
        raise _Problem(f"`{group}` has no `{tokens[1]}`. Its verbs: {verbs}.")
    raise _Grammar(f"`{head}` is not a command.")


def _pick_shortcut(registered: list[str], words: list[str]) -> str:
    """With several ids prefer a batch variant (``linker.batch_process``), else the first one."""
    ids = _numbers(" ".join(w for w in words if "=" not in w)) if words else []
    batch = [n for n in registered if "batch" in n]
    return batch[0] if len(ids) > 1 and batch else registered[0]


def _slash_action(act: Action, words: list[str], defaults: Mapping[str, Any] | None) -> Interpretation:
    pairs = [w for w in words if re.match(r"^[A-Za-z][\w-]*=", w)]
    values = [w for w in words if w not in pairs]
    args: dict[str, Any] = {}
    notes: list[str] = []
    for slot, raw in _fill_positional(act, values).items():
        _put(act, args, slot, raw)
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if (name := _resolve_key(act, key, raw)) is None:
            notes.append(_ignored(key, raw))
        else:
            _put(act, args, name, raw)
    return _finish(act, args, defaults, notes)


def _fill_positional(act: Action, values: list[str]) -> dict[str, str]:
    """Values without ``key=`` fill the positional fields; an id list takes every id that follows."""
    fields = _fields(act)
    slots = _positional(act)
    out: dict[str, str] = {}
    i = 0
    for n, slot in enumerate(slots):
        if i >= len(values):
            break
        kind = _kind(fields[slot])
        if kind == "ids":
            j = i
            while j < len(values) and re.fullmatch(r"(?:#?\d+(?:[-\u2013]\d+)?,?)+|and|&", values[j], re.I):
                j += 1
            if j == i:
                raise _Grammar(f"`{slot}` takes ids like 1,2,3, not {LQ}{values[i]}{RQ}.")
            out[slot] = " ".join(values[i:j])
            i = j
        elif n == len(slots) - 1 and kind in ("str", "strs"):
            out[slot] = " ".join(values[i:])
            i = len(values)
        else:
            out[slot] = values[i]
            i += 1
    if i < len(values):
        stray = " ".join(values[i:])
        raise _Grammar(f"I don't know where {LQ}{stray}{RQ} goes in `{_usage(act)}`; use key=value.")
    return out


# --- plain English --------------------------------------------------------------------------------------


@dataclass
class _Scan:
    """The part of a message not explained yet; explained spans are cut out."""

    text: str

    def take(self, pattern: str) -> re.Match[str] | None:
        match = re.search(pattern, self.text, re.I)
        if match:
            self.text = self.text[: match.start()] + SEP + self.text[match.end() :]
        return match


def _clean(text: str) -> str:
    """Straight quotes, one space, no chat mention or closing punctuation."""
    for curly, straight in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'")):
        text = text.replace(curly, straight)
    text = re.sub(r"^\s*<@[\w|.-]+>\s*", "", text)
    return re.sub(r"[\s?!.]+$", "", " ".join(text.split()))


def _parse_english(text: str, defaults: Mapping[str, Any] | None) -> Interpretation:
    cat = _catalog()
    clean = _clean(text)
    if GREETING.match(clean):
        return Interpretation(None, reply=help_text())
    if help_match := HELP.match(clean):
        return Interpretation(None, reply=help_text(help_match["topic"] or None))
    if how := HOW_TO.match(clean):
        return Interpretation(None, reply=help_text(_help_topic(how["rest"], cat)))
    scan = _Scan(clean)
    notes = _drop_account_mentions(scan)
    pairs = [(m["key"], m["value"].strip("\"'")) for m in _take_pairs(scan)]
    body = FILLER.sub("", scan.text.strip(" \u00a6"))
    verb, verb_word, body = _find_verb(body)
    noun = _find_noun(body, cat)
    names = [n for n in _candidates(verb, noun, cat) if n in cat.actions]
    if not names:
        if verb in ("link", "optimize", "publish"):
            return Interpretation(None, reply=_unavailable(verb))
        if verb == "generate":
            return Interpretation(
                None, reply="Generate what? Ideas for clusters, articles for tasks, or images. " + EXAMPLE
            )
        return _not_understood(text)
    act, args = _best_fit([cat.actions[n] for n in names], body, verb, verb_word)
    for key, raw in pairs:
        if (name := _resolve_key(act, key, raw)) is None:
            notes.append(_ignored(key, raw))
        else:
            args[name] = _coerce(act, name, raw) if not name.endswith("_name") else raw
    return _finish(act, args, defaults, notes)


def _help_topic(rest: str, cat: _Catalog) -> str | None:
    """ "how do I import keywords" -> the action it would run, else the group it mentions."""
    verb, _, body = _find_verb(FILLER.sub("", rest))
    noun = _find_noun(body, cat)
    names = [n for n in _candidates(verb, noun, cat) if n in cat.actions]
    return names[0] if names else noun if noun in cat.groups else None


def _drop_account_mentions(scan: _Scan) -> list[str]:
    notes = []
    while m := scan.take(r"\b(?P<k>account|tenant)(?:[\s_-]?id)?\s*(?:=|:|#)?\s*(?P<v>\d+)\b"):
        notes.append(_ignored(m["k"].lower(), m["v"]))
    return notes


def _take_pairs(scan: _Scan) -> list[re.Match[str]]:
    found = []
    while m := scan.take(r"(?<![\w-])(?P<key>[A-Za-z][\w-]*)=(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"']+)"):
        found.append(m)
    return found


def _find_verb(body: str) -> tuple[str | None, str | None, str]:
    """The verb category and word: the sentence's first word(s), else a clear verb anywhere."""
    phrases = {phrase: category for category, listed in VERBS.items() for phrase in listed}
    alternatives = "|".join(_alternatives(phrases))
    match = re.match(rf"(?:{alternatives})(?![\w-])", body, re.I)
    if match is None:
        anywhere = "|".join(_alternatives(p for p in phrases if p in ANYWHERE_VERBS))
        match = re.search(rf"(?<![\w-])(?:{anywhere})(?![\w-])", body, re.I)
    if match is None:
        return None, None, body
    word = " ".join(match[0].lower().split())
    return phrases[word], word, body[: match.start()] + SEP + body[match.end() :]


def _find_noun(body: str, cat: _Catalog) -> str | None:
    """The first noun; of adjacent nouns the last is the head ("article tasks" are tasks)."""
    match = cat.noun_re.search(body)
    while match and body[match.end() : match.end() + 1] == " ":
        after = cat.noun_re.match(body, match.end() + 1)
        if after is None:
            break
        match = after
    return cat.nouns[" ".join(match[0].lower().split())] if match else None


def _candidates(verb: str | None, noun: str | None, cat: _Catalog) -> list[str]:
    """Action names a verb and noun may mean, most likely first; unregistered ones are dropped later."""
    if verb is None:
        verb = "show" if noun else None
    if verb in ("link", "optimize", "publish"):
        return list(SHORTCUTS[verb])
    if verb == "cluster":
        return ["keywords.auto_cluster"]
    if verb == "generate":
        return [GENERATES[noun]] if noun in GENERATES else []
    if verb == "queue":
        return ["tasks.create_from_ideas"]
    if verb in ("grant", "revoke"):
        return [f"site_access.{verb}"]
    if verb in ("import", "export"):
        group = noun if noun in cat.groups else "keywords"
        return [f"{group}.{v}" for v in cat.groups.get(group, {}) if v.startswith(verb)]
    if noun in PSEUDO_ACTIONS:
        if verb == "create" and noun == "balance":
            return ["billing.add_credits"]
        return [PSEUDO_ACTIONS[noun]] if verb == "show" else []
    if noun == "image_prompts":
        return [GENERATES[noun]] if verb in ("create", "update") else []
    if verb not in CRUD_VERBS or noun is None:
        return []
    names = [f"{noun}.{v}" for v in CRUD_VERBS[verb]]
    if verb == "create":
        names += [f"{noun}.{v}" for v in cat.groups.get(noun, {}) if v.startswith("create_from_")]
        if noun == "ideas":
            names.append(GENERATES["ideas"])
    return names


def _best_fit(acts: list[Action], body: str, verb: str | None, verb_word: str | None) -> tuple[Action, dict]:
    """The first candidate the message fits: no leftover or conflicting values, and a name if it needs one."""
    tried: list[tuple[Action, dict[str, Any] | None, _Problem | None]] = []
    for act in acts:
        try:
            tried.append((act, _extract(act, body, verb, verb_word), None))
        except _Problem as problem:
            tried.append((act, None, problem))
    fitting = [(act, args) for act, args, problem in tried if args is not None]
    for act, args in fitting:
        name = _name_field(act, verb)
        if verb != "create" or name is None or name in args or not _fields(act)[name].is_required():
            return act, args
    if fitting:
        return fitting[0]
    raise [problem for _, _, problem in tried if problem is not None][-1]


def _extract(act: Action, body: str, verb: str | None, verb_word: str | None) -> dict[str, Any]:
    """Read the action's arguments out of the message, most specific patterns first."""
    scan = _Scan(body)
    args: dict[str, Any] = {}
    fields = _fields(act)
    _take_name(act, scan, args, verb, verb_word)
    _take_file(act, scan, args)
    _take_paging(act, scan, args)
    _take_ranges(act, scan, args)
    _take_choices(act, scan, args, verb, verb_word)
    _take_numbers_by_name(act, scan, args)
    if "ordering" in fields:
        _take_ordering(act, scan, args, body)
    _take_flags(act, scan, args, verb_word)
    _take_references(act, scan, args)
    _take_search(act, scan, args, verb_word)
    _take_bare_ids(act, scan, args)
    return args


def _take_name(act: Action, scan: _Scan, args: dict, verb: str | None, verb_word: str | None) -> None:
    name = _name_field(act, verb)
    if name == "email" or (name is None and "email" in _fields(act) and verb == "create"):
        if m := scan.take(EMAIL):
            _put(act, args, "email", m["v"])
        return
    if verb_word == "rename" and name:
        if m := scan.take(rf"\b(?:to|as)\s+(?P<v>{NAME})"):
            _put(act, args, name, m["v"].strip("\"'"))
        return
    if verb == "create" and name:
        nouns = "|".join(_alternatives(_noun_forms(_group(act))))
        for pattern in (
            rf"\b(?:called|named|titled)\s+(?P<v>{NAME})",
            rf"\b(?:{nouns})\s*:?\s+(?P<v>\"[^\"]+\"|'[^']+')",
            r"(?P<v>\"[^\"]+\")",
            rf"\b(?:{nouns})\s*:?\s+(?P<v>{NAME})",
        ):
            if m := scan.take(pattern):
                _put(act, args, name, m["v"].strip("\"'"))
                return
        return
    if "search" in _fields(act) and (m := scan.take(rf"\b(?:called|named|titled)\s+(?P<v>{NAME})")):
        _put(act, args, "search", m["v"].strip("\"'"))


def _noun_forms(group: str) -> list[str]:
    forms = {group.replace("_", " "), _singular(group).replace("_", " ")}
    return sorted(forms | set(NOUN_SYNONYMS.get(group, ())))


def _take_file(act: Action, scan: _Scan, args: dict) -> None:
    for name, info in _fields(act).items():
        if _kind(info) == "file" and (m := scan.take(r"\bfile\s+(?P<v>\S+)") or scan.take(PATH)):
            _put(act, args, name, m["v"].strip("\"'"))


def _take_paging(act: Action, scan: _Scan, args: dict) -> None:
    """ "page 2", "top 10", "20 per page", "the 20 newest" (the word stays for the ordering)."""
    fields = _fields(act)
    patterns = {
        "page_size": (
            r"\bpage\s*size\s*(?:=|:|of|is)?\s*(?P<v>\d+)\b",
            r"\b(?:top|first)\s+(?P<v>\d+)\b",
            rf"\b(?P<v>\d+)(?=\s+(?:{'|'.join(_alternatives(_noun_forms(_group(act))))})\b)",
            r"\b(?P<v>\d+)\s+(?:\w+\s+)?(?:per\s+page|results|rows|items)\b",
            r"\b(?P<v>\d+)(?=\s+(?:newest|latest|most\s+recent|recent|oldest|biggest|highest|largest)\b)",
        ),
        "page": (r"\bpage\s*(?:=|:|#|no\.?|number)?\s*(?P<v>\d+)\b",),
    }
    for name, tries in patterns.items():
        for pattern in tries if name in fields else ():
            if name not in args and (m := scan.take(pattern)):
                _put(act, args, name, m["v"])


def _metric(match: re.Match[str], number: int, suffix: int) -> int:
    value = float(match[number].replace(",", ""))
    return int(value * {"k": 1_000, "m": 1_000_000}.get((match[suffix] or "").lower(), 1))


def _take_ranges(act: Action, scan: _Scan, args: dict) -> None:
    """``volume over 1000`` -> volume_min, ``difficulty under 30`` -> difficulty_max, ``between … and …``."""
    fields = _fields(act)
    low_words = r"(?:over|above|more\s+than|greater\s+than|at\s+least|>=?|min(?:imum)?|from|of\s+at\s+least)"
    high_words = r"(?:under|below|less\s+than|lower\s+than|at\s+most|<=?|max(?:imum)?|up\s+to|of\s+at\s+most)"
    for base in sorted({n.rsplit("_", 1)[0] for n in fields if n.endswith(("_min", "_max"))}):
        words = "|".join(_alternatives(METRIC_WORDS.get(base, (base.replace("_", " "),))))
        w = rf"\b(?:{words})(?:\s+is)?"
        if m := scan.take(rf"{w}\s+between\s+{METRIC_NUMBER}\s+and\s+{METRIC_NUMBER}"):
            _put(act, args, f"{base}_min", _metric(m, 1, 2))
            _put(act, args, f"{base}_max", _metric(m, 3, 4))
        for bound, words_re in (("min", low_words), ("max", high_words)):
            m = scan.take(rf"{w}\s+{words_re}\s*{METRIC_NUMBER}\+?") or scan.take(
                rf"\b{words_re}\s*{METRIC_NUMBER}\s+(?:{words})\b"
            )
            if m:
                _put(act, args, f"{base}_{bound}", _metric(m, 1, 2))


def _take_choices(act: Action, scan: _Scan, args: dict, verb: str | None, verb_word: str | None) -> None:
    """Enum words ("active", "this month"); for new objects only after the field's name or "as"."""
    for name, info in _fields(act).items():
        choices = _choices(info)
        if not choices or name in args:
            continue
        values = "|".join(re.escape(c).replace("_", "[ _-]") for c in sorted(choices, key=len, reverse=True))
        label = name.replace("_", r"[ _-]")
        if verb == "create":
            pattern = rf"\b(?:{label}|as|status|type)\s*(?:=|:|of|is)?\s*(?P<v>{values})\b"
        else:
            pattern = rf"\b(?:{label}\s*(?:=|:|of|is|to)?\s*)?(?P<v>{values})\b"
        if m := scan.take(pattern):
            _put(act, args, name, m["v"])
        elif verb_word in STATE_VERBS and (state := STATE_VERBS[verb_word][1]) in choices:
            _put(act, args, name, state)


def _take_numbers_by_name(act: Action, scan: _Scan, args: dict) -> None:
    """Numbers named by their field: "page 2", "word count 1500", "5 ideas", "add 500 credits"."""
    for name, info in _fields(act).items():
        skip = name in args or name in ("id", "page", "page_size") or name.endswith(("_id", "_min", "_max"))
        if _kind(info) != "int" or skip:
            continue
        words = name.replace("_", r"\s+")
        m = scan.take(rf"\b{words}\s*(?:=|:|of|to|is|at)?\s*(?P<v>\d+)\b")
        if m is None:
            m = scan.take(rf"\b(?P<v>\d+)\s+{name.split('_')[0]}s?\b")
        if m:
            _put(act, args, name, m["v"])


def _take_ordering(act: Action, scan: _Scan, args: dict, body: str) -> None:
    words = "|".join(_alternatives(ORDER_WORDS))
    descending = re.search(r"\b(?:top|highest|most|biggest|largest|desc(?:ending)?)\b", body, re.I)
    m = scan.take(
        rf"\b(?:(?:sort(?:ed)?|order(?:ed)?)\s+)?by\s+(?:(?:highest|lowest|most|least)\s+)?(?P<v>{words})"
        r"(?:\s+(?:desc(?:ending)?|asc(?:ending)?|first))?\b"
    ) or scan.take(rf"\b(?:highest|most|biggest|largest|lowest|least)\s+(?P<v>{words})\b(?:\s+first)?")
    if m:
        key = ORDER_WORDS[" ".join(m["v"].lower().split())]
        args["ordering"] = f"-{key}" if descending else key
    elif m := scan.take(r"\b(?P<v>newest|latest|most\s+recent|recent|oldest)\b(?:\s+first)?"):
        args["ordering"] = "created_at" if m["v"].lower() == "oldest" else "-created_at"


def _take_flags(act: Action, scan: _Scan, args: dict, verb_word: str | None) -> None:
    """``is_active`` from "activate"/"inactive"…, ``with_api_key`` from "with an api key"."""
    for name, info in _fields(act).items():
        if _kind(info) != "bool" or name in args:
            continue
        if name.startswith("is_"):
            word = name[3:].replace("_", " ")
            if verb_word in STATE_VERBS and (state := STATE_VERBS[verb_word][0]) is not None:
                args[name] = state
            elif scan.take(rf"\b(?:in{word}|not\s+{word}|disabled)\b"):
                args[name] = False
            elif scan.take(rf"\b(?:{word}|enabled)\b"):
                args[name] = True
        elif name.startswith("with_") and scan.take(
            rf"\bwith\s+(?:an?\s+)?{name[5:].replace('_', r'[ _-]')}\b"
        ):
            args[name] = True


def _take_references(act: Action, scan: _Scan, args: dict) -> None:
    """ "keywords 4, 5 and 6", "site 3", "in cluster 5"; and sites/sectors by name."""
    cat = _catalog()
    while m := cat.ref_re.search(scan.text):
        scan.text = scan.text[: m.start()] + SEP + scan.text[m.end() :]
        group = cat.nouns[" ".join(m["noun"].lower().split())]
        _assign_ids(act, args, group, _numbers(m["nums"]), m[0])
    fields = _fields(act)
    for kind in ("site", "sector"):
        if f"{kind}_id" not in fields or f"{kind}_id" in args:
            continue
        words = "|".join(_alternatives(_noun_forms(kind + "s")))
        m = scan.take(rf"\b(?:{words})\s+(?:called\s+|named\s+)?{NOT_A_NAME}(?P<v>{NAME})")
        if m:
            _put(act, args, f"{kind}_name", m["v"])


def _assign_ids(act: Action, args: dict, group: str, ids: list[int], said: str) -> None:
    fields = _fields(act)
    single = _singular(group)
    target = _primary(act) if group in _primary_nouns(act) else None
    if target is None:
        lists = [n for n in (f"{single}_ids",) if n in fields]
        singles = [n for n in fields if n == f"{single}_id" or n.endswith(f"_{single}_id")]
        target = (lists or singles or [None])[0]
    if target is None:
        raise _Problem(f"`{act.name}` doesn't take {LQ}{said}{RQ}. Usage: `{_usage(act)}`.")
    if _kind(fields[target]) == "ids":
        _put(act, args, target, ",".join(map(str, ids)))
    elif len(ids) == 1:
        _put(act, args, target, ids[0])
    else:
        raise _Problem(f"`{act.name}` takes one {single.replace('_', ' ')} at a time, not {said}.")


def _take_search(act: Action, scan: _Scan, args: dict, verb_word: str | None) -> None:
    if "search" not in _fields(act) or "search" in args:
        return
    lead = (
        r"containing|contains|contain|matching|matches|match|including|includes|mentioning|about|like|"
        r"with\s+the\s+(?:words?|text|term)|for\s+the\s+(?:word|term|phrase)"
    )
    if verb_word in ("search", "find", "look for", "look up", "lookup"):
        lead += r"|for"
    if m := scan.take(rf"\b(?:{lead})\s+(?P<v>{NAME})"):
        _put(act, args, "search", m["v"].strip("\"'"))


def _take_bare_ids(act: Action, scan: _Scan, args: dict) -> None:
    found = re.findall(NUMLIST, scan.text)
    if not found:
        return
    ids = _numbers(" , ".join(found))
    primary = _primary(act)
    if primary is None or primary in args:
        shown = ", ".join(map(str, ids))
        raise _Problem(f"I'm not sure what {LQ}{shown}{RQ} refers to in `{_usage(act)}`.")
    _assign_ids(act, args, _group(act), ids, " ".join(found))


# --- finishing: defaults, missing arguments, replies -----------------------------------------------------

# Arguments an action needs one of although its model cannot say so (auto_cluster: ids or a sector).
ONE_OF = {"keywords.auto_cluster": ("keyword_ids", "sector_id")}


def _context(defaults: Mapping[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in CONTEXT_FIELDS:
        value = (defaults or {}).get(key)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip().isdigit():
            out[key] = int(value)
    return out


def _given(args: Mapping[str, Any], name: str) -> bool:
    return name in args or (name in CONTEXT_FIELDS and name.replace("_id", "_name") in args)


def _finish(
    act: Action, args: dict[str, Any], defaults: Mapping[str, Any] | None, notes: list[str]
) -> Interpretation:
    fields = _fields(act)
    one_of = ONE_OF.get(act.name, ())
    needed = {n for n, f in fields.items() if f.is_required()}
    if one_of and not any(_given(args, n) for n in one_of):
        needed |= {n for n in one_of if n in CONTEXT_FIELDS}
    _apply_defaults(args, _context(defaults), needed, fields)
    missing = [n for n in fields if n in needed and not _given(args, n)]
    notes_text = " ".join(notes) or None
    if not missing:
        return Interpretation(act.name, args, (), notes_text)
    alternatives = [n for n in one_of if n not in missing] if set(missing) <= set(one_of) else []
    question = _question(act, missing, alternatives)
    return Interpretation(act.name, args, tuple(missing), f"{question} {notes_text or ''}".strip())


def _apply_defaults(
    args: dict[str, Any], ctx: Mapping[str, int], needed: set[str], fields: Mapping[str, FieldInfo]
) -> None:
    """Fill needed site/sector from context; a sector only if the message's site is the context's."""
    other_site = _given(args, "site_id") and args.get("site_id") != ctx.get("site_id")
    if "sector_id" in needed and not _given(args, "sector_id") and "sector_id" in ctx and not other_site:
        args["sector_id"] = ctx["sector_id"]
        if "site_id" in fields and not _given(args, "site_id") and "site_id" in ctx:
            args["site_id"] = ctx["site_id"]
    if "site_id" in needed and not _given(args, "site_id") and "site_id" in ctx:
        args["site_id"] = ctx["site_id"]


def _question(act: Action, missing: list[str], alternatives: list[str]) -> str:
    parts = _join([_describe(act, n) for n in missing], "and")
    if alternatives:
        parts = _join([_describe(act, n) for n in alternatives] + [parts], "or")
    which = "Which one?" if len(missing) == 1 else "Which ones?"
    return f"To {_purpose(act)} I need: {parts}. {which}"


def _purpose(act: Action) -> str:
    text = re.split(r"\s+\(|[;:,]", act.summary, maxsplit=1)[0].strip()
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _describe(act: Action, name: str) -> str:
    info = _fields(act)[name]
    group = _group(act)
    if name in FIELD_WORDS:
        words = FIELD_WORDS[name]
    elif name == "id":
        words = f"which {GROUP_SINGULAR_WORDS.get(group, _singular(group).replace('_', ' '))}"
    elif name == "ids":
        words = f"which {group.replace('_', ' ')}"
    elif name.endswith("_ids"):
        words = f"the {name[:-4].replace('_', ' ')}s".replace("contents", "content")
    elif name.endswith("_id"):
        words = f"the {name[:-3].replace('_', ' ')}"
    else:
        words = f"the {name.replace('_', ' ')}"
    choices = _choices(info)
    return f"{words} ({name}: one of {', '.join(choices)})" if choices else f"{words} ({name})"


def _join(parts: list[str], word: str) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} {word} {parts[-1]}"


def _unavailable(shortcut: str) -> str:
    what = MODULE_NAMES.get(shortcut, f"`{shortcut}`")
    return f"{what} isn't available yet. Try `/igny8 help` to see what I can do."


def _not_understood(text: str) -> Interpretation:
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:77] + "…"
    return Interpretation(None, reply=f"I didn't understand {LQ}{shown}{RQ}. {EXAMPLE}")


# --- entry points -------------------------------------------------------------------------------------


def interpret(text: str, *, defaults: Mapping[str, Any] | None = None) -> Interpretation:
    """Turn one chat message into an action call, a question, or a plain reply. Never raises."""
    stripped = _clean(text) if text else ""
    if not stripped:
        return Interpretation(None, reply=help_text())
    slash = re.match(r"^/?igny8\b\s*|^/", stripped, re.I)
    if slash is None and not _looks_like_command(stripped):
        try:
            return _parse_english(text, defaults)
        except _Problem as problem:
            return Interpretation(None, reply=str(problem))
    command = stripped[slash.end() :].lstrip("/") if slash else stripped
    try:
        return _parse_slash(command, defaults)
    except _Grammar as grammar:
        try:  # "/igny8 cluster my keywords": a command prefix on a plain sentence
            english = _parse_english(command, defaults)
        except _Problem:
            english = None
        if english is not None and english.action is not None:
            return english
        return Interpretation(None, reply=f"{grammar} {EXAMPLE}")
    except _Problem as problem:
        return Interpretation(None, reply=str(problem))


def _looks_like_command(text: str) -> bool:
    """ "keywords list status=active" without a slash: a group followed by one of its exact verbs."""
    words = text.split(maxsplit=2)
    cat = _catalog()
    group = _group_of(words[0], cat) if words else None
    return bool(group and len(words) > 1 and words[1].lower().replace("-", "_") in cat.groups[group])


def help_text(topic: str | None = None) -> str:
    """Help derived from the registry: an overview, a group's verbs, or one action's options."""
    cat = _catalog()
    words = (topic or "").strip().lower().removeprefix("/igny8").replace(".", " ").replace("/", " ").split()
    if not words:
        return _overview(cat)
    group = _group_of(words[0], cat)
    verb = _verb_of(group, words[1], False, cat) if group and len(words) > 1 else None
    if group and verb:
        return _action_help(cat.groups[group][verb])
    if group and (group == words[0].replace("-", "_") or words[0] not in SHORTCUTS):
        return _group_help(group, cat)
    if words[0] in SHORTCUTS:
        registered = [n for n in SHORTCUTS[words[0]] if n in cat.actions]
        return _action_help(cat.actions[registered[0]]) if registered else _unavailable(words[0])
    noun = _find_noun(" ".join(words), cat)
    if noun in cat.groups:
        return _group_help(noun, cat)
    return f"I have no help on {LQ}{' '.join(words)}{RQ}.\n\n{_overview(cat)}"


def _overview(cat: _Catalog) -> str:
    lines = [
        "Commands: `/igny8 <group> <verb> [value] key=value …` (or `/<group> <verb> …`).",
        'Quote values with spaces: name="Running shoes". Ids: ids=1,2,3.',
        "site= and sector= take an id or a name.",
        "",
        "Groups and verbs:",
    ]
    for group, verbs in sorted(cat.groups.items()):
        lines.append(f"• {group.replace('_', '-')}: {', '.join(v.replace('_', '-') for v in verbs)}")
    ready: dict[str, str] = {}
    later: list[str] = []
    for shortcut, names in SHORTCUTS.items():
        registered = [n for n in names if n in cat.actions]
        if registered and registered[0] not in ready.values():
            ready[shortcut] = registered[0]
        elif not registered and names not in [SHORTCUTS[s] for s in later]:
            later.append(shortcut)
    lines += ["", "Shortcuts:"]
    lines += [f"• `/igny8 {s}` = {name.replace('.', ' ').replace('_', '-')}" for s, name in ready.items()]
    lines.append("• `/igny8 keywords import <file.csv> site=… sector=…`")
    if later:
        lines.append(f"Not available yet (their modules are not installed): {', '.join(later)}.")
    lines += [
        "",
        f"Plain English works too, e.g. {LQ}cluster my keywords{RQ}, {LQ}show keywords with volume over "
        f"1000{RQ}, {LQ}write articles for tasks 1 and 2{RQ}, {LQ}how many credits do I have?{RQ}",
        "More: `/igny8 help <group>` or `/igny8 help <group> <verb>`.",
    ]
    return "\n".join(lines)


def _group_help(group: str, cat: _Catalog) -> str:
    lines = [f"{group.replace('_', ' ').capitalize()}:"]
    for act in cat.groups[group].values():
        lines.append(f"• `{_usage(act)}` — {act.summary}")
    lines.append(f"Details: `/igny8 help {group.replace('_', '-')} <verb>`.")
    return "\n".join(lines)


def _action_help(act: Action) -> str:
    lines = [f"`{_usage(act, full=True)}`", act.summary + "."]
    if act.confirm:
        lines.append("Asks for confirmation before it runs.")
    if act.long:
        lines.append("Runs for a while and reports progress.")
    fields = _fields(act)
    if fields:
        lines.append("Options:")
    for name, info in fields.items():
        need = "required" if info.is_required() else _default_text(info)
        alias = " (or site=<id or name>)" if name == "site_id" else ""
        alias = " (or sector=<id or name>)" if name == "sector_id" else alias
        description = f" — {info.description}" if info.description else ""
        lines.append(f"  {name}={_placeholder(info)}{alias} [{need}]{description}")
    return "\n".join(lines)


def _default_text(info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    if default is None or default in ([], {}, ""):
        return "optional"
    return f"default {default.value if isinstance(default, Enum) else default}"


def _placeholder(info: FieldInfo) -> str:
    kind = _kind(info)
    if kind == "choice":
        return "|".join(_choices(info))
    return {
        "file": "<file path>",
        "ids": "<ids, e.g. 1,2,3>",
        "strs": "<a,b,c>",
        "json": "<JSON>",
        "list": "<a,b,c or JSON>",
        "bool": "yes|no",
        "int": "<number>",
        "float": "<number>",
        "datetime": "<ISO date-time>",
    }.get(kind, "<text>")


def _usage(act: Action, *, full: bool = False) -> str:
    """``/igny8 keywords import-csv <file> site_id=<id> sector_id=<id> [key=value …]``."""
    group, verb = act.name.split(".", 1)
    fields = _fields(act)
    positional = _positional(act)
    parts = [f"/igny8 {group.replace('_', '-')} {verb.replace('_', '-')}"]
    for name in positional:
        parts.append(f"<{name}>" if fields[name].is_required() else f"[{name}]")
    for name, info in fields.items():
        if info.is_required() and name not in positional:
            parts.append(f"{name}={_placeholder(info)}" if full else f"{name}=…")
    if any(not f.is_required() and n not in positional for n, f in fields.items()):
        parts.append("[key=value …]")
    return " ".join(parts)
