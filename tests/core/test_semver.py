"""SemVer 2.0.0 parsing and precedence (the specification's own examples and its edge cases)."""

from __future__ import annotations

import pytest

from model_mcp.core.semver import parse_semver, semver_or_none


def test_precedence_follows_the_specification_example():
    # semver.org, section 11: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2
    # < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"]
    parsed = [parse_semver(text) for text in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert sorted(ordered[::-1], key=parse_semver) == ordered


def test_build_metadata_is_ignored_and_numbers_compare_as_numbers():
    assert parse_semver("1.0.0+build.1") == parse_semver("1.0.0+other")
    assert parse_semver("1.0.0-rc.1+b") < parse_semver("1.0.0")
    assert parse_semver("1.0.0-2") < parse_semver("1.0.0-10") < parse_semver("1.0.0-a")
    assert parse_semver("1.0.0-alpha") < parse_semver("1.0.0-alpha.0")
    assert parse_semver("0.9.99") < parse_semver("0.10.0")


@pytest.mark.parametrize("text", ["1", "1.0", "01.0.0", "1.0.0-", "1.0.0+", "1.0.0-01", "v1.0.0", " 1.0.0",
                                  "1.0.0-a..b", "1.0.0-é", "1" * 300 + ".0.0", ""])
def test_what_is_not_a_semantic_version(text):
    with pytest.raises(ValueError, match="not a semantic version"):
        parse_semver(text)
    assert semver_or_none(text) is None


def test_valid_edge_forms():
    for text in ("0.0.0", "1.0.0-0A.is.legal", "1.0.0-x-y-z.--", "1.0.0+0.build.1-rc.10000aaa-kk-0.1"):
        assert parse_semver(text).text == text
