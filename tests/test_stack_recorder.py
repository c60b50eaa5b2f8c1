"""What the stack recorder takes from a green build: its archive comes from the build's
properties, set on the master by ``packaging`` (not from a file name rule of its own)."""

from __future__ import annotations

from typing import Any

import pytest

from anybox_ci.render.steps_stacks import StackRecorder

SHA = "0123456789abcdef" * 4
PACKAGING = {"upload_dir": "releases"}


def test_the_archive_is_the_builds_own() -> None:
    values = {"archive_name": "core-1.2.tar.gz", "archive_sha256": SHA}
    assert StackRecorder.artefact(PACKAGING, values) == ("releases/core-1.2.tar.gz", SHA)


@pytest.mark.parametrize(
    ("member", "values"),
    [
        ({"upload_dir": ""}, {"archive_name": "core-1.2.tar.gz", "archive_sha256": SHA}),
        (PACKAGING, {}),
    ],
)
def test_no_archive_without_an_upload_folder_or_properties(
    member: dict[str, Any], values: dict[str, Any]
) -> None:
    assert StackRecorder.artefact(member, values) == ("", "")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"archive_name": "../core.tar.gz", "archive_sha256": SHA}, "is not a file name"),
        ({"archive_name": "sub/core.tar.gz", "archive_sha256": SHA}, "is not a file name"),
        ({"archive_name": "/etc/passwd", "archive_sha256": SHA}, "is not a file name"),
        ({"archive_name": "core.tar.gz", "archive_sha256": SHA.upper()}, "is not a SHA-256"),
        ({"archive_name": "core.tar.gz"}, "is not a SHA-256"),
        ({"archive_sha256": SHA}, "is not a file name"),
    ],
)
def test_a_malformed_archive_property_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StackRecorder.artefact(PACKAGING, values)
