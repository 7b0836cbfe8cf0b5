"""Typed domain errors. Every surface turns these into a message a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Igny8Error(Exception):
    """Base for errors that are the caller's to fix; ``code`` is stable for clients."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationFailed(Igny8Error):
    """Input broke a rule; ``errors`` names each offending field."""

    code = "validation_error"
    http_status = 400

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        self.errors = errors
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(message or f"Invalid input — {summary}", details=[e.to_dict() for e in errors])

    @classmethod
    def single(cls, field_name: str, message: str) -> ValidationFailed:
        return cls([FieldError(field_name, message)])


class NotFound(Igny8Error):
    """Missing — or belonging to another tenant, which must look the same."""

    code = "not_found"
    http_status = 404

    def __init__(self, kind: str, ident: Any) -> None:
        super().__init__(f"{kind} {ident} not found", details={"kind": kind, "id": ident})


class PermissionDenied(Igny8Error):
    code = "permission_denied"
    http_status = 403


class Conflict(Igny8Error):
    code = "conflict"
    http_status = 409


class NotAuthenticated(Igny8Error):
    code = "not_authenticated"
    http_status = 401


class TenancyViolation(Igny8Error):
    """Code tried to run a statement the tenant filter cannot scope (a bug, not user error)."""

    code = "tenancy_violation"
    http_status = 500


@dataclass
class ConfirmationRequest:
    action: str
    arguments: dict[str, Any]
    summary: str
    estimated_credits: int = 0
    allowed: tuple[str, ...] = field(default=("approve", "edit", "reject"))


class ConfirmationRequired(Igny8Error):
    """The action changes or spends something that needs a yes first."""

    code = "confirmation_required"
    http_status = 409

    def __init__(self, request: ConfirmationRequest) -> None:
        self.request = request
        super().__init__(
            f"{request.action} needs confirmation: {request.summary}",
            details={
                "action": request.action,
                "arguments": request.arguments,
                "estimated_credits": request.estimated_credits,
                "allowed": list(request.allowed),
            },
        )


class InsufficientCredits(Igny8Error):
    code = "insufficient_credits"
    http_status = 402

    def __init__(self, needed: int, balance: int | None = None) -> None:
        have = f"; you have {balance}" if balance is not None else ""
        super().__init__(
            f"This needs {needed} credits{have}. Add credits or upgrade your plan.",
            details={"needed": needed, "balance": balance},
        )


class PlanLimitExceeded(Igny8Error):
    code = "plan_limit_exceeded"
    http_status = 402
