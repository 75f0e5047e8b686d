from chaoskit.config.issues import Issue, Severity
from chaoskit.config.yamlsource import Location
from chaoskit.errors import ChaosKitError, ConfigError


def test_config_error_lists_every_error_and_not_warnings():
    issues = [
        Issue(
            Severity.ERROR, Location("a.yaml", 3), "VirtualService/default/r", "spec.hosts", "bad"
        ),
        Issue(
            Severity.WARNING,
            Location("a.yaml", 4),
            "VirtualService/default/r",
            "spec.http[0]",
            "meh",
        ),
        Issue(Severity.ERROR, Location("b.yaml", 1), "", "", "no such file or folder"),
    ]
    err = ConfigError(issues)
    assert isinstance(err, ChaosKitError)
    assert err.issues == issues
    text = str(err)
    assert text.splitlines()[0] == "2 configuration errors:"
    assert "a.yaml:3: error: VirtualService/default/r: spec.hosts: bad" in text
    assert "b.yaml:1: error: no such file or folder" in text
    assert "meh" not in text
