from chaoskit.config.issues import Issues
from chaoskit.config.yamlsource import Location


def test_code_is_shown_after_the_message_and_in_json():
    issues = Issues()
    issues.warning(
        Location("a.yaml", 3), "VirtualService/default/r", "spec.hosts", "m", code="IST0109"
    )
    issues.error(Location("a.yaml", 4), "", "kind", "plain")
    coded, plain = list(issues)
    assert str(coded) == "a.yaml:3: warning: VirtualService/default/r: spec.hosts: m [IST0109]"
    assert str(plain) == "a.yaml:4: error: kind: plain"
    assert coded.to_dict()["code"] == "IST0109" and plain.to_dict()["code"] is None


def test_notes_sort_after_errors_and_warnings_on_a_line_and_count_apart():
    issues = Issues()
    here = Location("a.yaml", 1)
    issues.note(here, "", "", "n")
    issues.warning(here, "", "", "w")
    issues.error(here, "", "", "e")
    assert [i.message for i in issues.sorted()] == ["e", "w", "n"]
    assert (len(issues.errors), len(issues.warnings), len(issues.notes)) == (1, 1, 1)
