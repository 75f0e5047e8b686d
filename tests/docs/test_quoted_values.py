"""Numbers the docs quote from real runs are the numbers a run gives today.

The transcripts that show them cannot run in the suite (fixed ports, a terminal session), so
the values themselves are checked: how many resources the Bookinfo mesh has, and the per-test
seed the pytest tutorial's failure report shows.
"""

from __future__ import annotations

import re

from chaoskit_pytest.fixtures import seed_for_test

from chaoskit.config import load_paths, load_text, validate
from tests.docs.markdown import BLOCKS, DOCS, ROOT

BOOKINFO_MESH = ROOT / "experiments" / "bookinfo" / "mesh"


def bookinfo_resources() -> int:
    return len(validate([load_paths([BOOKINFO_MESH])]).resources)


def test_bookinfo_resource_counts():
    real = bookinfo_resources()
    proxy = (DOCS / "proxy.md").read_text(encoding="utf-8")
    configuration = (DOCS / "configuration.md").read_text(encoding="utf-8")
    quoted = {
        "proxy.md, mitmdump loading the mesh": re.findall(
            r"chaoskit: loaded (\d+) resources", proxy
        ),
        "configuration.md, the Bookinfo mesh": re.findall(r"(\d+) resources in all", configuration),
    }
    for where, numbers in quoted.items():
        assert numbers and {int(n) for n in numbers} == {real}, f"{where}: {numbers}, real {real}"


def test_the_reload_message_counts_the_layered_resources():
    """proxy.md §5: ``-f experiments/bookinfo/mesh/ -f over.yaml``, where over.yaml replaces
    the mesh's reviews VirtualService."""
    (over,) = [b for b in BLOCKS["proxy.md"] if b.lang == "yaml" and "name: reviews-v2" in b.text]
    proxy = (DOCS / "proxy.md").read_text(encoding="utf-8")
    (quoted,) = re.findall(r"chaoskit proxy: reloaded (\d+) resources", proxy)
    real = validate([load_paths([BOOKINFO_MESH]), load_text(over.text, "over.yaml")]).resources
    assert int(quoted) == len(real)


def test_the_tutorials_failure_report_shows_the_tests_real_seed():
    pytest_md = (DOCS / "pytest.md").read_text(encoding="utf-8")
    (seed, session) = re.findall(r"^seed (\d+) \(session seed (\d+):", pytest_md, re.M)[0]
    node = "test_checkout.py::test_slow_payments_gets_a_graceful_error_in_time"
    assert f"def {node.split('::')[1]}(" in pytest_md
    assert int(seed) == seed_for_test(int(session), node)
