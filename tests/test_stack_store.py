"""The stack tables on a real SQLite database: freezing, immutability, atomic promotion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from anybox_ci.stacks.export import buildout_export, diff_lines, stack_dict
from anybox_ci.stacks.model import Pin
from anybox_ci.stacks.store import StackError, StackStore, engine_url

A = "a" * 40
B = "b" * 40


def pin(codebase: str, revision: str) -> Pin:
    return Pin(codebase, f"file:///repos/{codebase}", "main", revision)


@pytest.fixture
def store(tmp_path: Path) -> StackStore:
    return StackStore.open("sqlite:///state.sqlite", tmp_path)


def test_relative_sqlite_is_the_masters(tmp_path: Path) -> None:
    assert engine_url("sqlite:///state.sqlite", tmp_path) == f"sqlite:///{tmp_path}/state.sqlite"


def test_freeze_takes_the_newest_candidates_and_moves_testing(store: StackStore) -> None:
    store.record_candidate("core", [pin("core", A)], "1.0.0", now=1)
    store.record_candidate("web", [pin("web", A)], "2.0.0", now=2)
    store.record_candidate("core", [pin("core", B)], "1.0.1", now=3)
    stack = store.freeze("erp", ["core", "web"], "alice")
    assert stack.number == 1 and stack.frozen_by == "alice"
    assert stack.member("core").release_version == "1.0.1"  # type: ignore[union-attr]
    assert store.channels("erp") == {"testing": 1}
    # a newer candidate never changes the frozen stack
    store.record_candidate("web", [pin("web", B)], "2.0.1", now=4)
    assert store.stack("erp", 1) == stack
    second = store.freeze("erp", ["core", "web"], "bob")
    assert second.number == 2 and store.channels("erp") == {"testing": 2}
    assert diff_lines(stack, second) == [
        "stack erp 1 -> 2",
        "~ web 2.0.0 -> 2.0.1",
        f"    web: {A[:12]} -> {B[:12]}",
    ]


def test_freeze_without_a_candidate_is_refused(store: StackStore) -> None:
    store.record_candidate("core", [pin("core", A)], "1.0.0")
    with pytest.raises(StackError, match="no green build yet of web"):
        store.freeze("erp", ["core", "web"], "alice")
    assert store.stacks("erp") == []


def test_the_same_build_recorded_twice_is_one_candidate(store: StackStore) -> None:
    first = store.record_candidate("core", [pin("core", A)], "1.0.0", now=1)
    again = store.record_candidate("core", [pin("core", A)], "1.0.0", now=5)
    assert first.id == again.id and len(store.candidates("core")) == 1
    assert again.recorded_at == 5


def test_promotion_is_logged_with_its_author(store: StackStore) -> None:
    store.record_candidate("core", [pin("core", A)], "1.0.0")
    store.freeze("erp", ["core"], "ci")
    store.freeze("erp", ["core"], "ci")
    store.promote("erp", 2, "stable", "acceptance")
    move = store.promote("erp", 1, "stable", "admin", "rollback")
    assert move.previous == 2 and store.channels("erp")["stable"] == 1
    assert [(m.channel, m.number, m.author) for m in store.log("erp")][:2] == [
        ("stable", 1, "admin"),
        ("stable", 2, "acceptance"),
    ]
    with pytest.raises(StackError, match="no stack 9"):
        store.promote("erp", 9, "stable", "admin")
    with pytest.raises(StackError, match="unknown channel"):
        store.promote("erp", 1, "prod", "admin")
    assert store.channels("erp")["stable"] == 1


def test_concurrent_freezes_get_distinct_numbers(tmp_path: Path) -> None:
    """Two "masters" (two engines on one database file) freezing at once."""
    first = StackStore.open("sqlite:///state.sqlite", tmp_path)
    first.record_candidate("core", [pin("core", A)], "1.0.0")
    stores = [StackStore.open("sqlite:///state.sqlite", tmp_path) for _ in range(4)]
    numbers: list[int] = []

    def freeze(s: StackStore) -> None:
        for _ in range(5):
            numbers.append(s.freeze("erp", ["core"], "m").number)

    threads = [threading.Thread(target=freeze, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(1, 21))
    assert first.channels("erp")["testing"] == 20


def test_export_forms(store: StackStore) -> None:
    store.record_candidate("core", [pin("core", A)], "1.0.0")
    stack = store.freeze("erp", ["core"], "ci")
    text = buildout_export(stack)
    assert "[versions]\ncore = 1.0.0\n" in text
    assert f"core = git file:///repos/core branch=main rev={A}" in text
    data = stack_dict(stack, store.channels("erp"))
    assert data["channels"] == ["testing"]
    assert data["members"][0]["revisions"][0]["revision"] == A


def test_export_names_each_archive_with_its_hash(store: StackStore) -> None:
    sha = "c" * 64
    store.record_candidate("core", [pin("core", A)], "1.0.0", "releases/core-1.0.0.tar.gz", sha)
    store.record_candidate("web", [pin("web", A)], "2.0.0")
    stack = store.freeze("erp", ["core", "web"], "ci")
    text = buildout_export(stack)
    assert text.endswith(
        f"\n[anybox-ci-artefacts]\ncore = releases/core-1.0.0.tar.gz sha256={sha}\n"
    )
    member = stack_dict(stack)["members"][0]
    assert (member["artefact"], member["artefact_sha256"]) == ("releases/core-1.0.0.tar.gz", sha)
