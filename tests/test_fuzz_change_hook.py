"""Fuzzing the ``anybox`` change hook: any form gives a change or a one-line ValueError.

The handler's ``getChanges`` runs on a fake request (the form as Twisted parses it: bytes
keys, lists of bytes values) with the database's claim answered "never seen". Whatever the
body, the outcome is a change within the limits, or a ValueError whose message is one
non-empty line, which Buildbot turns into a 400. Never another exception (a 500).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.python.failure import Failure

from anybox_ci.changes.protocol import MAX_COMMENTS, MAX_FILES, MAX_WHEN, Change, change_form
from anybox_ci.core.vcs import codebase_name
from anybox_ci.www.change_hook import FIELDS, AnyboxHookHandler, KnownRepositories

REPOSITORY = "https://forge.example.com/erp.git"


class _Request:
    def __init__(self, args: dict[bytes, list[bytes]]) -> None:
        self.args = args

    def notifyFinish(self) -> defer.Deferred[None]:
        return defer.succeed(None)


class _Handler(AnyboxHookHandler):
    def _admit(self, cid: str, revision: str) -> defer.Deferred[bool]:
        return defer.succeed(True)  # the database's answer for a change never seen


def _handler() -> _Handler:
    registry = KnownRepositories()
    registry.set({REPOSITORY: ["main", "ünï/cödé"], "https://f/bzr": [""]})
    return _Handler(None, {"registry": registry})


HANDLER = _handler()


def _outcome(args: dict[bytes, list[bytes]]) -> Any:
    result: list[Any] = []
    HANDLER.getChanges(_Request(args)).addBoth(result.append)
    assert result, "getChanges did not finish synchronously"
    return result[0]


def _genuine(revision: int, branch: str, **extra: Any) -> dict[str, str]:
    change = Change(REPOSITORY, branch, f"{revision:040x}", "Ada <ada@example.com>", "msg",
                    ("a.py",), 1_700_000_000.0, "git")  # fmt: skip
    return {**change_form(change.change_id, change), **extra}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
text_values = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["inf", "-inf", "nan", "1e300", "-1", "1e9999", "0x10", "", " ", "\x00"]),
    json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)
raw_values = st.one_of(
    text_values.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=50),
)
field_names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)).map(str.encode)
forms = st.dictionaries(field_names, st.lists(raw_values, min_size=0, max_size=3), max_size=12)


@st.composite
def mutated_genuine(draw: st.DrawFn) -> dict[bytes, list[bytes]]:
    """A genuine change's form with a few fields replaced, added or dropped."""
    branch = draw(st.sampled_from(["main", "ünï/cödé"]))
    form = {k.encode(): [v.encode()] for k, v in _genuine(draw(st.integers(0, 99)), branch).items()}
    for _ in range(draw(st.integers(0, 3))):
        key = draw(field_names)
        if draw(st.booleans()):
            form.pop(key, None)
        else:
            form[key] = draw(st.lists(raw_values, min_size=1, max_size=2))
    return form


def _check(args: dict[bytes, list[bytes]]) -> None:
    outcome = _outcome(args)
    if isinstance(outcome, Failure):
        exc = outcome.value
        assert type(exc) is ValueError, outcome.getTraceback()
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        message.encode("ascii", "strict")  # it becomes an HTTP reason phrase
        return
    changes, vcs = outcome
    assert vcs in ("git", "hg", "bzr")
    [chdict] = changes
    assert chdict["repository"] in HANDLER.registry.get()
    assert chdict["author"] and len(chdict["comments"]) <= MAX_COMMENTS
    assert isinstance(chdict["files"], list) and len(chdict["files"]) <= MAX_FILES
    when = chdict["when_timestamp"]
    assert when is None or (math.isfinite(when) and 0 <= when <= MAX_WHEN)
    assert not chdict["project"]
    assert chdict["codebase"] in (None, codebase_name(chdict["repository"], chdict["branch"]))


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(forms)
def test_fuzz_any_form(args: dict[bytes, list[bytes]]) -> None:
    _check(args)


@SETTINGS
@given(mutated_genuine())
def test_fuzz_near_genuine_forms(args: dict[bytes, list[bytes]]) -> None:
    _check(args)


def test_the_genuine_form_is_accepted() -> None:
    form = {k.encode(): [v.encode()] for k, v in _genuine(1, "main").items()}
    changes, vcs = _outcome(form)
    assert vcs == "git" and changes[0]["revision"] == f"{1:040x}"
