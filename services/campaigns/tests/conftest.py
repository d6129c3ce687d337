"""The campaigns service's test fixtures: a fake Graph API over real HTTP."""
import pytest

from crm_common.fake_graph import FakeGraph


@pytest.fixture
def graph():
    fake = FakeGraph()
    yield fake
    fake.stop()
