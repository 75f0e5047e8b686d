import pytest

from chaoskit.netaddr import is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.2.1", "::1"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize(
    # No DNS: a name is loopback only if it is literally "localhost"; brackets and ports are
    # the caller's to strip (parse_address does).
    "host",
    ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.", "[::1]", "127.0.0.1:80", ""],
)
def test_other_hosts(host):
    assert not is_loopback(host)
