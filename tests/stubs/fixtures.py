"""Pytest fixtures that run the wire-protocol stubs on 127.0.0.1 (a fresh random port per test).

Enable them for the whole suite with this line in ``tests/conftest.py``::

    from tests.stubs.fixtures import openai_stub_fixture, runware_stub_fixture  # noqa: F401

The functions carry a ``_fixture`` suffix (the fixture names are ``openai_stub``/``runware_stub``)
so that importing them does not clash with test arguments of the same name (ruff F811).

A fresh server per test also means a fresh base URL, so the chat client's per-base-URL memory of
refused ``response_format`` modes never leaks between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stubs.openai_stub import OpenAIStub
from tests.stubs.runware_stub import RunwareStub


@pytest.fixture(name="openai_stub")
async def openai_stub_fixture() -> AsyncIterator[OpenAIStub]:
    async with OpenAIStub() as stub:
        yield stub


@pytest.fixture(name="runware_stub")
async def runware_stub_fixture() -> AsyncIterator[RunwareStub]:
    async with RunwareStub() as stub:
        yield stub
