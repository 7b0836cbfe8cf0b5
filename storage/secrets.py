"""Encryption at rest for integration secrets (API keys, passwords), keyed by IGNY8_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from storage.settings import get_settings

PREFIX = "enc:v1:"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def _current() -> Fernet:
    return _fernet(get_settings().secret_key.get_secret_value())


def encrypt(plaintext: str) -> str:
    return PREFIX + _current().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    """Plain values (written before encryption existed) pass through unchanged."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _current().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ValueError(
            "cannot decrypt a stored secret: IGNY8_SECRET_KEY changed since it was saved"
        ) from None


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)
