import gc

import pytest

from chaoskit.config import loader as loader_module
from chaoskit.config import validate, validate_paths
from chaoskit.config.gcpause import gc_paused
from chaoskit.config.loader import load_paths, load_text

from .helpers import SERVICES


@pytest.fixture
def gc_enabled():
    """Every test starts with the collector on and leaves it as it found it."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_pause_disables_the_collector_and_turns_it_back_on(gc_enabled):
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_turns_it_back_on_when_the_body_raises(gc_enabled):
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_pause_leaves_a_disabled_collector_disabled(gc_enabled):
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nested_pauses_restore_only_at_the_outer_end(gc_enabled):
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_is_off_while_loading_and_on_afterwards(gc_enabled, tmp_path, monkeypatch):
    states = []
    real = loader_module.parse_resources

    def spy(docs, issues):
        states.append(gc.isenabled())
        return real(docs, issues)

    monkeypatch.setattr(loader_module, "parse_resources", spy)
    path = tmp_path / "mesh.yaml"
    path.write_text(SERVICES)
    assert validate_paths([path]).ok
    assert load_text(SERVICES).resources
    assert states == [False, False]
    assert gc.isenabled()


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2\n",  # not YAML at all: unreadable
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a]}\n",
    ],
)
def test_collector_is_back_on_after_a_load_with_errors(gc_enabled, tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert not validate_paths([path]).ok
    assert gc.isenabled()
    assert not validate([load_text(text)]).ok
    assert gc.isenabled()


def test_collector_is_back_on_after_loading_raises(gc_enabled, tmp_path, monkeypatch):
    def explode(docs, issues):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(loader_module, "parse_resources", explode)
    path = tmp_path / "mesh.yaml"
    path.write_text(SERVICES)
    with pytest.raises(RuntimeError, match="parser bug"):
        validate_paths([path])
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="parser bug"):
        load_paths([path])
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="parser bug"):
        load_text(SERVICES)
    assert gc.isenabled()


def test_loading_leaves_a_disabled_collector_disabled(gc_enabled, tmp_path):
    path = tmp_path / "mesh.yaml"
    path.write_text(SERVICES)
    gc.disable()
    try:
        assert validate_paths([path]).ok
        assert not gc.isenabled()
    finally:
        gc.enable()
