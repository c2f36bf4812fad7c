"""Session hooks: the mypy run of tests/test_typing.py starts as soon as collection has
selected its test (tests/helpers.py: mypy_process), and is ended with the session."""

from __future__ import annotations

import os

import pytest
from helpers import mypy_process, stop_mypy

MYPY_TEST = "test_typing.py::test_mypy_reports_no_error"


def pytest_collection_finish(session: pytest.Session) -> None:
    # Under pytest-xdist every worker collects every test, and the one that runs it is not
    # known yet: there the test starts mypy itself, beside the other worker's tests.
    if os.environ.get("PYTEST_XDIST_WORKER") is None and any(item.nodeid.endswith(MYPY_TEST)
                                                             for item in session.items):
        mypy_process()


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_mypy()
