"""Status badges for READMEs: a buildout's badge is the worst last result of its cells."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from anybox_ci.www.badges import COLOURS, aggregate, badge_svg
from anybox_ci.www.matrix_data import LastBuild


def _build(results: int | None, done: bool = True) -> LastBuild:
    return LastBuild(1, 1, 1, results, 1_700_000_000, 1_700_000_060 if done else None)


def test_the_worst_finished_result_wins() -> None:
    assert aggregate([_build(0), _build(2), None]) == "failure"
    assert aggregate([_build(0), _build(1)]) == "warnings"
    assert aggregate([_build(0), _build(None, done=False)]) == "success"
    assert aggregate([_build(None, done=False)]) == "running"
    assert aggregate([_build(0), _build(6)]) == "cancelled"
    assert aggregate([None, None]) == "unknown"
    assert aggregate([]) == "unknown"


def test_badge_is_valid_svg_with_the_state_colour_and_escaped_text() -> None:
    svg = badge_svg("a<b>&c", "failure")
    root = ET.fromstring(svg)  # well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["a<b>&c", "failure"]
    assert f'fill="{COLOURS["failure"]}"' in svg
    assert "<b>" not in svg
    widths = [int(w) for w in re.findall(r'<rect (?:x="\d+" )?width="(\d+)"', svg)]
    assert int(root.get("width") or 0) == sum(widths)


def test_unknown_state_is_grey() -> None:
    assert f'fill="{COLOURS["unknown"]}"' in badge_svg("x", "bogus")
