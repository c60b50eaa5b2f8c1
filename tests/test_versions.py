"""Tests for versions and version filters."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anybox_ci.core.versions import Criterion, Version, VersionFilter, parse_requirement

V = Version.parse

# --- Version --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, release, pre",
    [
        ("9.6", (9, 6), None),
        ("13", (13,), None),
        ("16.2", (16, 2), None),
        ("3.11", (3, 11), None),
        ("17-devel", (17,), ("dev", 0)),
        ("17devel", (17,), ("dev", 0)),
        ("17-dev", (17,), ("dev", 0)),
        ("17-beta1", (17,), ("b", 1)),
        ("17beta2", (17,), ("b", 2)),
        ("17rc1", (17,), ("rc", 1)),
        ("17-alpha", (17,), ("a", 0)),
        ("3.13.0a1", (3, 13, 0), ("a", 1)),
        ("3.13.0b2", (3, 13, 0), ("b", 2)),
        ("17RC1", (17,), ("rc", 1)),
    ],
)
def test_parse_components(text: str, release: tuple[int, ...], pre: tuple[str, int] | None):
    v = V(text)
    assert v.release == release
    assert v.pre == pre
    assert v.is_prerelease == (pre is not None)
    assert str(v) == text


def test_str_is_stripped_original_and_major():
    v = V("  16.2-devel \n")
    assert str(v) == "16.2-devel"
    assert repr(v) == "Version('16.2-devel')"
    assert v.major == 16
    assert V("9.6").major == 9


def test_ordering_chain():
    chain = ["9.6", "13", "16.2", "17-devel", "17alpha", "17a2", "17beta1", "17rc1", "17", "17.1"]
    versions = [V(t) for t in chain]
    for lower, higher in itertools.pairwise(versions):
        assert lower < higher, (lower, higher)
        assert higher > lower
        assert lower != higher
    assert sorted(reversed(versions)) == versions


def test_devel_spellings_are_equal_and_below_release():
    assert V("17-devel") == V("17devel") == V("17-dev") == V("17.0devel")
    assert V("17-devel") < V("17")
    assert V("17devel") > V("16.9")
    assert V("17-beta1") == V("17beta1") == V("17b1")


def test_trailing_zeros_are_insignificant():
    assert V("13.0") == V("13")
    assert V("13.0.0") == V("13")
    assert hash(V("13.0")) == hash(V("13"))
    assert len({V("13"), V("13.0"), V("13.0.0")}) == 1
    assert V("13.0.1") > V("13")
    assert V("13.0.5") < V("13.1")
    # Equal but still spelled as written.
    assert str(V("13.0")) == "13.0"


def test_version_is_frozen():
    v = V("13")
    with pytest.raises(AttributeError):
        v.text = "14"  # type: ignore[misc]


def test_version_not_equal_to_string():
    assert V("13") != "13"
    with pytest.raises(TypeError):
        _ = V("13") < "14"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty version"),
        ("   ", "empty version"),
        ("abc", "invalid version 'abc'"),
        ("13.", "invalid version '13.'"),
        ("1..2", "invalid version '1..2'"),
        ("v13", "invalid version 'v13'"),
        ("13-", "invalid version '13-'"),
        ("13-foo-bar", "invalid version '13-foo-bar'"),
        ("13-9", "invalid version '13-9'"),
        ("13 14", "invalid version '13 14'"),
        ("١٣", "invalid version"),  # non-ASCII digits
        ("1" * 40, "number too large"),
    ],
)
def test_version_parse_errors(text: str, fragment: str):
    with pytest.raises(ValueError) as info:
        V(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert "Traceback" not in message


# --- VersionFilter --------------------------------------------------------------------------


def test_empty_filter_matches_everything():
    for text in ("", "   ", "\t\n"):
        f = VersionFilter.parse(text)
        assert f.is_any
        assert str(f) == ""
        assert f.match("9.6")
        assert f.match(V("17-devel"))


def test_and_semantics():
    f = VersionFilter.parse(">= 13 < 16")
    assert not f.is_any
    assert [f.match(t) for t in ("12", "13", "15.9", "16-devel", "16", "17")] == [
        False,
        True,
        True,
        True,  # a 16 development snapshot is still below 16
        False,
        False,
    ]


def test_or_semantics_and_precedence():
    f = VersionFilter.parse(">= 13 < 16 OR == 9.6")
    assert len(f.alternatives) == 2
    assert f.match("9.6")
    assert f.match("14")
    assert not f.match("9.5")
    assert not f.match("12")
    assert not f.match("16")
    # OR binds looser than the implicit AND on either side.
    g = VersionFilter.parse("< 10 OR > 15 < 17")
    assert [g.match(t) for t in ("9", "12", "16", "17")] == [True, False, True, False]


def test_not_equal():
    f = VersionFilter.parse(">= 13 != 14")
    assert f.match("13")
    assert not f.match("14")
    assert not f.match("14.0")  # trailing zero: still 14
    assert f.match("14.1")
    assert not f.match("12")
    assert VersionFilter.parse("!= 17-devel").match("17")
    assert not VersionFilter.parse("!= 17-devel").match("17devel")


@pytest.mark.parametrize(
    "op, expected",
    [
        (">=", [False, True, True]),
        ("<=", [True, True, False]),
        ("==", [False, True, False]),
        ("!=", [True, False, True]),
        ("<", [True, False, False]),
        (">", [False, False, True]),
    ],
)
def test_each_operator(op: str, expected: list[bool]):
    f = VersionFilter.parse(f"{op} 13")
    assert [f.match(t) for t in ("12", "13.0", "13.1")] == expected


def test_bare_version_means_equal():
    f = VersionFilter.parse("15")
    assert f == VersionFilter.parse("== 15")
    assert str(f) == "== 15"
    assert f.match("15.0")
    assert not f.match("15.1")
    assert VersionFilter.parse("9.6 OR 15").match("9.6")


@pytest.mark.parametrize(
    "text",
    [
        ">=13 <16",
        ">= 13 < 16",
        "  >=  13   <   16  ",
        ">=13<16",
        ">=\t13\n<16",
    ],
)
def test_whitespace_variants(text: str):
    f = VersionFilter.parse(text)
    assert f == VersionFilter.parse(">= 13 < 16")
    assert str(f) == ">= 13 < 16"


def test_canonical_str():
    f = VersionFilter.parse(">=13   <16 OR==9.6 OR 17-devel")
    assert str(f) == ">= 13 < 16 OR == 9.6 OR == 17-devel"
    assert VersionFilter.parse(str(f)) == f
    assert repr(f) == "VersionFilter.parse('>= 13 < 16 OR == 9.6 OR == 17-devel')"


def test_match_rejects_bad_version_string():
    with pytest.raises(ValueError, match="invalid version 'x'"):
        VersionFilter.parse(">= 13").match("x")


def test_direct_construction_rejects_empty_alternative_and_bad_operator():
    with pytest.raises(ValueError, match="empty alternative"):
        VersionFilter(((Criterion(">=", V("13")),), ()))
    with pytest.raises(ValueError, match="unknown operator '=>'"):
        Criterion("=>", V("13"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("=> 13", "unknown operator '=>' in '=> 13' (did you mean '>='?)"),
        ("= 13", "unknown operator '=' in '= 13' (did you mean '=='?)"),
        ("<> 13", "unknown operator '<>' in '<> 13' (did you mean '!='?)"),
        ("~= 13", "unknown operator '~=' in '~= 13'"),
        (">=", "missing version after '>=' in '>='"),
        (">= 13 <", "missing version after '<' in '>= 13 <'"),
        (">= < 13", "missing version after '>=' (found '<') in '>= < 13'"),
        (">= OR 13", "missing version after '>=' (found 'OR') in '>= OR 13'"),
        (">= 13 OR", "dangling 'OR' at the end of '>= 13 OR'"),
        ("OR >= 13", "'OR' with no criterion before it in 'OR >= 13'"),
        (">= 13 OR OR 14", "'OR' with no criterion after 'OR' in '>= 13 OR OR 14'"),
        ("13 or 14", "write 'or' in uppercase, 'OR', in '13 or 14'"),
        (">= 13 AND < 16", "unexpected 'AND' in '>= 13 AND < 16'"),
        (">= abc", "invalid version 'abc' (expected e.g."),
        (">= 13, < 16", "invalid version '13,'"),
    ],
)
def test_filter_parse_errors(text: str, message: str):
    with pytest.raises(ValueError) as info:
        VersionFilter.parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_filter_error_quotes_the_offending_filter():
    with pytest.raises(ValueError) as info:
        VersionFilter.parse(">= 13 < abc OR 9.6")
    assert str(info.value).endswith("in '>= 13 < abc OR 9.6'")
    assert "'abc'" in str(info.value)


# --- parse_requirement ----------------------------------------------------------------------


def test_parse_requirement():
    name, f = parse_requirement("postgresql >= 13 < 16 OR == 9.6")
    assert name == "postgresql"
    assert f == VersionFilter.parse(">= 13 < 16 OR == 9.6")
    assert f.match("9.6") and f.match("15") and not f.match("16")


@pytest.mark.parametrize("text", ["python", "  postgresql  ", "odoo-server_x.y"])
def test_parse_requirement_name_only(text: str):
    name, f = parse_requirement(text)
    assert name == text.strip()
    assert f.is_any


def test_parse_requirement_glued_operator():
    assert parse_requirement("postgresql>=13") == ("postgresql", VersionFilter.parse(">= 13"))
    assert parse_requirement("python 3.11") == ("python", VersionFilter.parse("== 3.11"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "missing capability name"),
        ("   ", "missing capability name"),
        (">= 13", "missing capability name before the filter in '>= 13'"),
        ("OR 13", "missing capability name"),
        ("13 >= 14", "invalid capability name '13'"),
        ("post$gres >= 13", "invalid capability name 'post$gres'"),
        ("postgresql => 13", "unknown operator '=>' in 'postgresql => 13'"),
        ("postgresql >= 13 OR", "dangling 'OR' at the end of 'postgresql >= 13 OR'"),
    ],
)
def test_parse_requirement_errors(text: str, message: str):
    with pytest.raises(ValueError) as info:
        parse_requirement(text)
    assert message in str(info.value)


# --- properties -----------------------------------------------------------------------------

SUFFIXES = ["", "-devel", "devel", "-dev", "-alpha", "a", "-beta", "beta", "b", "rc", "-rc", "c"]

releases = st.lists(st.integers(0, 30), min_size=1, max_size=4)


@st.composite
def versions(draw: st.DrawFn) -> Version:
    release = draw(releases)
    suffix = draw(st.sampled_from(SUFFIXES))
    number = draw(st.sampled_from(["", "1", "2", "10"])) if suffix else ""
    return Version.parse(".".join(map(str, release)) + suffix + number)


criteria = st.builds(Criterion, st.sampled_from(["<", "<=", "==", "!=", ">=", ">"]), versions())
filters = st.builds(
    VersionFilter,
    st.lists(st.lists(criteria, min_size=1, max_size=3).map(tuple), max_size=3).map(tuple),
)


@given(filters, st.lists(versions(), max_size=10))
def test_filter_round_trip(f: VersionFilter, probes: list[Version]):
    text = str(f)
    again = VersionFilter.parse(text)
    assert again == f
    assert str(again) == text
    assert hash(again) == hash(f)
    for probe in probes:
        assert again.match(probe) == f.match(probe)
        assert again.match(str(probe)) == f.match(probe)


@given(versions())
def test_version_round_trip(v: Version):
    again = Version.parse(str(v))
    assert again == v
    assert str(again) == str(v)
    assert VersionFilter.parse(str(v)).match(v)


@given(releases, releases)
def test_release_order_is_zero_padded_tuple_order(a: list[int], b: list[int]):
    width = max(len(a), len(b))
    pa = tuple(a) + (0,) * (width - len(a))
    pb = tuple(b) + (0,) * (width - len(b))
    va, vb = V(".".join(map(str, a))), V(".".join(map(str, b)))
    assert (va < vb) == (pa < pb)
    assert (va == vb) == (pa == pb)


@given(versions())
def test_prerelease_sorts_below_its_release(v: Version):
    release = V(".".join(map(str, v.release)))
    if v.is_prerelease:
        assert v < release
    else:
        assert v == release


TEXT_ALPHABET = st.sampled_from(list("0123456789.-_ <>=!~^ORorabcdevltrA\t\n,*"))


@given(st.one_of(st.text(), st.text(TEXT_ALPHABET)))
def test_arbitrary_text_parses_or_raises_value_error(text: str):
    try:
        f = VersionFilter.parse(text)
    except ValueError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message  # repr() escapes newlines in quoted input
    else:
        assert VersionFilter.parse(str(f)) == f


@given(st.one_of(st.text(), st.text(TEXT_ALPHABET)))
def test_arbitrary_requirement_parses_or_raises_value_error(text: str):
    try:
        name, f = parse_requirement(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert name
        assert parse_requirement(f"{name} {f}") == (name, f)
