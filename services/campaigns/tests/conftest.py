"""The campaigns service's test fixtures: a fake Graph API over real HTTP."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_graph import FakeGraph  # noqa: E402


@pytest.fixture
def graph():
    fake = FakeGraph()
    yield fake
    fake.stop()
