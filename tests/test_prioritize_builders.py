"""``c['prioritizeBuilders']``: Buildbot's default order of builders from one query of the
pending requests, and builders with nothing pending left out."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.render.prioritize import PendingRequestsOrder
from tests.test_render import make_master


def _at(second: int) -> datetime:
    return datetime(2026, 12, 1, 12, 0, second, tzinfo=UTC)


class _Data:
    def __init__(self, requests: list[dict[str, Any]]):
        self.requests = requests
        self.queries: list[tuple[Any, ...]] = []

    def get(self, path: tuple[str, ...], filters: Any = ()) -> Any:
        self.queries.append(path)
        [claimed] = [f for f in filters if f.field == "claimed"]
        assert claimed.op == "eq" and claimed.values == [False]
        return defer.succeed(list(self.requests))


def _builder(name: str, builderid: int) -> Any:
    return SimpleNamespace(name=name, getBuilderId=lambda: defer.succeed(builderid))


def _order(requests: list[dict[str, Any]], builders: list[Any]) -> tuple[list[str], _Data]:
    data = _Data(requests)
    found: list[Any] = []
    PendingRequestsOrder()(SimpleNamespace(data=data), builders).addCallback(found.append)
    return [b.name for b in found[0]], data


def test_priority_first_then_the_oldest_request_then_the_name_in_one_query() -> None:
    requests = [
        {"builderid": 1, "priority": 0, "submitted_at": _at(1)},
        {"builderid": 2, "priority": 0, "submitted_at": _at(5)},
        {"builderid": 2, "priority": 0, "submitted_at": _at(0)},
        {"builderid": 3, "priority": 10, "submitted_at": _at(9)},
        {"builderid": 4, "priority": 0, "submitted_at": _at(1)},
    ]
    builders = [_builder(n, i) for i, n in enumerate(["idle", "a", "b", "urgent", "c"])]
    names, data = _order(requests, builders)
    assert names == ["urgent", "b", "a", "c"]  # "idle" has nothing pending
    assert data.queries == [("buildrequests",)]


def test_nothing_pending_nothing_to_consider() -> None:
    names, _ = _order([], [_builder("a", 1), _builder("b", 2)])
    assert names == []


def test_the_configurator_sets_it_unless_master_cfg_has_its_own(tmp_path: Any) -> None:
    root = make_master(tmp_path)
    config_dict: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config_dict)
    assert isinstance(config_dict["prioritizeBuilders"], PendingRequestsOrder)

    def own(master: Any, builders: Any) -> Any:
        return builders

    config_dict = {"prioritizeBuilders": own}
    AnyboxConfigurator(root).configure(config_dict)
    assert config_dict["prioritizeBuilders"] is own
