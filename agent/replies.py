"""Tool results written for people: tables for lists, counts, what happened and what to do next.

The offline model answers with these; surfaces may use them to render results too.
"""

from __future__ import annotations

import json
from typing import Any

HIDDEN = {"created_at", "updated_at", "account_id", "site_id", "sector_id", "description", "html_content"}
MAX_ROWS = 20
MAX_COLUMNS = 6


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value[:5])) + ("…" if len(value) > 5 else "")
    return str(value).replace("|", "/").replace("\n", " ")[:60]


def table(rows: list[dict[str, Any]]) -> str:
    columns = [c for c in rows[0] if c not in HIDDEN][:MAX_COLUMNS]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows[:MAX_ROWS]]
    return "\n".join(lines)


def describe(action: str, content: str) -> str:
    """One tool result (the JSON the tool returned) as a short answer."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return content
    if isinstance(data, dict) and "error" in data and "message" in data:
        return f"That didn't work: {data['message']}" + (f"\n{data['next']}" if data.get("next") else "")
    if isinstance(data, dict) and data.get("rejected"):
        return "OK — I didn't do it. Nothing was changed and no credits were used."
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return _page(action, data)
    if isinstance(data, dict) and "succeeded" in data and "credits_used" in data:
        return _ai_run(data)
    if isinstance(data, dict) and {"imported", "duplicates_skipped", "rows_rejected"} <= data.keys():
        return _import(data)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return table(data)
    if isinstance(data, dict):
        return "\n".join(f"- **{k}**: {_cell(v)}" for k, v in data.items() if k not in HIDDEN)
    return str(data)


def _page(action: str, page: dict[str, Any]) -> str:
    noun = action.split(".")[0].replace("_", " ")
    if not page["results"]:
        return f"No {noun} found."
    shown = len(page["results"])
    head = f"{page['count']} {noun}" + (f" (showing {min(shown, MAX_ROWS)})" if page["count"] > shown else "")
    more = f"\nAsk for page {page['next']} to see more." if page.get("next") else ""
    return f"{head}:\n\n{table(page['results'])}{more}"


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" … ({len(ids)} in all)" if len(ids) > 10 else "")


def _produced(refs: list[dict[str, Any]]) -> list[str]:
    """What an AI run made, from the references its items saved."""
    out = []
    if clustered := sum(r.get("keywords_clustered", 0) for r in refs):
        clusters = sorted({c for r in refs for c in r.get("cluster_ids", [])})
        out.append(f"grouped {clustered} keywords into {len(clusters)} clusters (ids {_ids(clusters)})")
    for key, noun in (("idea_ids", "content ideas"), ("image_ids", "images")):
        if made := [i for r in refs for i in r.get(key, [])]:
            out.append(f"created {len(made)} {noun} (ids {_ids(made)})")
    if articles := [r["content_id"] for r in refs if "word_count" in r]:
        out.append(f"wrote {len(articles)} articles (content ids {_ids(articles)})")
    return out


def _ai_run(run: dict[str, Any]) -> str:
    done, failed = len(run["succeeded"]), run.get("failed") or []
    provider = run.get("provider", "the AI")
    produced = _produced(run["succeeded"]) or [f"{done} item(s) processed"]
    text = f"Done with {provider}: {'; '.join(produced)}; {run['credits_used']} credits used"
    if run.get("credits_reserved", 0) > run["credits_used"]:
        text += f" ({run['credits_reserved'] - run['credits_used']} reserved credits returned)"
    text += "."
    if failed:
        text += "\nFailed: " + "; ".join(f"{f['item']}: {f['message']}" for f in failed[:5])
    return text


def _import(result: dict[str, Any]) -> str:
    skipped = []
    if result["duplicates_skipped"]:
        skipped.append(f"{result['duplicates_skipped']} already there or repeated in the file")
    if result["rows_rejected"]:
        skipped.append(f"{result['rows_rejected']} rows with errors")
    text = f"Imported {result['imported']} of {result['total_rows']} keywords"
    text += f" ({'; '.join(skipped)})." if skipped else "."
    errors = result.get("errors") or []
    text += "".join(f"\n- line {e['line']}, {e['field']}: {e['message']}" for e in errors[:5])
    if result["errors_count"] > 5:
        text += f"\n- … and {result['errors_count'] - 5} more"
    return text
