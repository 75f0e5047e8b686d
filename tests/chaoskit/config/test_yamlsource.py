import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.config import yamlsource
from chaoskit.config.yamlsource import (
    MAX_DEPTH,
    Location,
    YamlError,
    YList,
    YMap,
    parse_documents,
    read_documents,
)


def test_documents_keep_lines_of_keys_and_items():
    docs = parse_documents("a: 1\nb:\n  - x\n  - y\n---\n- 3\n", "f.yaml")
    assert len(docs) == 2
    first = docs[0].value
    assert isinstance(first, YMap)
    assert first.loc_of("a") == Location("f.yaml", 1)
    assert first.loc_of("b") == Location("f.yaml", 3)
    assert isinstance(first["b"], YList)
    assert [loc.line for loc in first["b"].item_locs] == [3, 4]
    assert docs[1].loc.line == 5


def test_empty_documents_are_skipped():
    assert parse_documents("---\n---\na: 1\n---\n")[0].value == {"a": 1}
    assert parse_documents("") == []


def test_plain_types_and_quoted_strings():
    (doc,) = parse_documents("i: 3\nf: 1.5\nb: true\nn: null\ns: '3'\nt: 2020-01-01\n")
    assert doc.value == {"i": 3, "f": 1.5, "b": True, "n": None, "s": "3", "t": "2020-01-01"}


def test_keys_are_their_text():
    (doc,) = parse_documents("on: 1\n9080: x\n")
    assert doc.value == {"true": 1, "9080": "x"}


def test_aliases_are_shared_and_merge_keys_work():
    (doc,) = parse_documents("base: &b {x: 1}\nuse: *b\nm:\n  <<: *b\n  y: 2\n")
    assert doc.value["use"] == {"x": 1}
    assert doc.value["m"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a: !!python/object:os.system x", 1, "is not allowed"),
        ("a: !!python/object/apply:os.system [ls]", 1, "is not allowed"),
        ("a: !custom x", 1, "is not allowed"),
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
        ("a: [1, 2\n", 2, "YAML syntax error"),
        ("a: &x\n  b: *x\n", 2, "refers to itself"),
        ("a: *nope\n", 1, "unknown alias"),
        ("? [a, b]\n: 1\n", 1, "mapping key must be a plain value"),
        ("[" * 10_000 + "]" * 10_000, 1, "nest"),
        (
            "a:\n" + "".join("  " * i + "b:\n" for i in range(1, MAX_DEPTH + 5)),
            MAX_DEPTH + 1,
            "nested deeper",
        ),
        ("a: " + "9" * 5000 + "\n", 1, "cannot read"),
        ("a: 1\nb: !!bool maybe\n", 2, "cannot read 'maybe' as bool"),
        ("a: !!int ''\n", 1, "cannot read '' as int"),
        ("a: !!float ''\n", 1, "cannot read '' as float"),
        ("\t- x", 1, "YAML syntax error"),
    ],
)
def test_hostile_yaml_is_a_message_with_a_line(text, line, fragment):
    with pytest.raises(YamlError) as info:
        parse_documents(text, "f.yaml")
    assert info.value.location.line == line
    assert fragment in info.value.message


def test_billion_laughs_is_refused_cheaply():
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for name in "bcdefghij":
        text += f"{name}: &{name} [" + ",".join(["*" + prev] * 9) + "]\n"
        prev = name
    with pytest.raises(YamlError, match="aliases are expanded"):
        parse_documents(text)


def test_unreadable_files(tmp_path):
    with pytest.raises(YamlError, match="cannot read file"):
        read_documents(str(tmp_path / "missing.yaml"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(YamlError, match="not UTF-8"):
        read_documents(str(binary))


def test_repeated_plain_scalars_resolve_the_same_every_time():
    text = "a: [1, '1', 1, yes, 'yes', yes, ~, null, '~', 1.5, 1.5, x, x]\nb: 1\n1: b\n"
    (doc,) = parse_documents(text)
    assert doc.value["a"] == [1, "1", 1, True, "yes", True, None, None, "~", 1.5, 1.5, "x", "x"]
    assert [type(v) for v in doc.value["a"][:6]] == [int, str, int, bool, str, bool]
    assert doc.value["b"] == 1
    assert doc.value["1"] == "b"


def test_explicit_tags_are_not_confused_with_plain_scalars():
    (doc,) = parse_documents("a: 1\nb: !!str 1\nc: !!float 1\nd: 1\n")
    assert doc.value == {"a": 1, "b": "1", "c": 1.0, "d": 1}
    assert [type(v) for v in doc.value.values()] == [int, str, float, int]


def test_items_on_one_line_share_its_location():
    (doc,) = parse_documents("a: {b: 1, c: [x, y]}\nd: 2\n", "f.yaml")
    a = doc.value["a"]
    assert a.loc == a.loc_of("b") == a["c"].loc_of(1) == Location("f.yaml", 1)
    assert doc.value.loc_of("d") == Location("f.yaml", 2)


def test_parsing_keeps_no_reference_to_the_scalars_it_read():
    # PyYAML's construct_object memoises every node in its loader; ours is shared by every
    # parse, so going through it kept each file's scalars alive for the life of the process.
    parse_documents("a: [1, 2.5, true, null, text]\n")
    assert not yamlsource._scalar_constructor.constructed_objects
    assert not yamlsource._scalar_constructor.recursive_objects


@given(
    tag=st.sampled_from(["str", "int", "float", "bool", "null", "timestamp", "binary", "set"]),
    text=st.text(max_size=20),
    quoted=st.booleans(),
)
def test_any_explicitly_tagged_scalar_is_a_value_or_a_message(tag, text, quoted):
    value = json.dumps(text) if quoted else text
    try:
        parse_documents(f"a: !!{tag} {value}\n", "f.yaml")
    except YamlError as e:
        assert e.location.file == "f.yaml" and e.message
