"""pytest fixtures shared by the interop suite: one running stack per test module."""

import pytest

from stack import Stack, new_stack


@pytest.fixture(scope="module")
def stack() -> Stack:
    with new_stack() as running:
        yield running
