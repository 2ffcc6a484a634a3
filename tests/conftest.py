"""The suite's fixtures and markers; what test modules import lives in
tests/helpers.py.

    def test_x(tiny_bar_root, run_tool): ...
"""
import pytest

from tests.helpers import run_tool, write_bar_folder


def pytest_configure(config):
    # `make test` runs every test; `make test-fast` (-m "not slow") the unit
    # tier, for day-to-day work
    config.addinivalue_line(
        'markers', 'slow: an end-to-end training or a tool run in a '
        'subprocess (seconds to minutes each); left out by make test-fast')


@pytest.fixture
def tiny_bar_root(tmp_path):
    """A BAR folder (train/ and test/, 2 JPEGs of 32 px per class)."""
    return write_bar_folder(tmp_path / 'BAR')


@pytest.fixture(scope='module')
def bar_root(tmp_path_factory):
    """A BAR folder as :func:`tiny_bar_root`, one for all the tests of a
    module (the runs they share read it)."""
    return write_bar_folder(tmp_path_factory.mktemp('data') / 'BAR')


@pytest.fixture(name='run_tool')
def run_tool_fixture():
    """The :func:`run_tool` helper as a fixture."""
    return run_tool
