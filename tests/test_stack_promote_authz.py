"""Only admins may promote or roll back a stack through the ``stack-promote-NAME`` form.

The configuration is the configurator's, from a manifest with a ``[domain:erp]`` section and
``authz_config`` with a ``developers`` group allowed to force; each request is decided by
Buildbot's own ``Authz.assertUserAllowed`` against the real data API endpoints of a Buildbot
test master (``buildbot.test.fake.fakemaster``, its database holding the builders and one
promote build), as the web server's JSON-RPC ``force`` and ``rebuild`` actions are.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from buildbot.www.authz import Forbidden
from twisted.internet import defer
from twisted.trial import unittest

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.www.authz import authz_config

MANIFEST = """\
[core]
buildout = standalone b.cfg
build-for = postgresql 15

[web]
buildout = standalone b.cfg
build-for = postgresql 15

[domain:erp]
members = core web
acceptance-steps = members
"""
WORKERS = "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"

ADMIN = {"username": "alice"}
DEVELOPER = {"username": "dave"}  # in the developers group, which may force
VISITOR = {"username": "erin"}  # logged in, no role of her own


def configured(root: Path) -> dict[str, Any]:
    """What ``master.cfg.sample`` gets: the sample's authz, then the configurator."""
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "workers.cfg").write_text(WORKERS)
    config: dict[str, Any] = {
        "www": {
            "port": 8010,
            "authz": authz_config(
                admins=["alice"],
                anonymous_read=True,
                force_roles=["developers"],
                groups={"developers": ["dave"]},
            ),
        }
    }
    AnyboxConfigurator(root).configure(config)
    return config


class PromoteAuthzTests(TestReactorMixin, unittest.TestCase):
    def setUp(self) -> Any:
        self.setup_test_reactor()
        return defer.ensureDeferred(self.set_up())

    async def set_up(self) -> None:
        # not trial's mktemp(), which leaves a folder in the working directory
        root = Path(tempfile.mkdtemp(prefix="promote-authz-"))
        self.addCleanup(shutil.rmtree, root, True)
        self.config = configured(root)
        self.master = await fakemaster.make_master(self, wantData=True, wantDb=True)
        forms = [s for s in self.config["schedulers"] if hasattr(s, "computeBuilderNames")]
        self.forms = {s.name: s for s in forms}
        self.master.allSchedulers = lambda: forms
        self.ids = {"erp-promote": 1, "erp-acceptance": 2, "core-pg15": 3}
        await self.master.db.insert_test_data(
            [fakedb.Master(id=1), fakedb.Worker(id=1, name="w1")]
            + [fakedb.Builder(id=i, name=n) for n, i in self.ids.items()]
            + [
                fakedb.Buildset(id=20),
                fakedb.BuildRequest(id=30, buildsetid=20, builderid=1),
                fakedb.Build(id=40, number=1, buildrequestid=30, builderid=1, masterid=1),
                fakedb.Buildset(id=21),
                fakedb.BuildRequest(id=31, buildsetid=21, builderid=3),
                fakedb.Build(id=41, number=1, buildrequestid=31, builderid=3, masterid=1),
            ]
        )
        for form in forms:
            form.parent = self.master  # as setServiceParent would, without starting it
        self.authz = self.config["www"]["authz"]
        self.authz.setMaster(self.master)

    @defer.inlineCallbacks
    def allowed(
        self, user: dict[str, Any], path: tuple[Any, ...], action: str, **options: Any
    ) -> Generator[Any, Any, bool]:
        try:
            yield self.authz.assertUserAllowed(path, action, options, user)
        except Forbidden:
            return False
        return True

    def force(self, user: dict[str, Any], form: str, **options: Any) -> Any:
        return self.allowed(user, ("forceschedulers", form), "force", **options)

    def test_the_promote_form_exists_for_the_promote_builder_only(self) -> None:
        form = self.forms["stack-promote-erp"]
        assert form.builderNames == ["erp-promote"]

    @defer.inlineCallbacks
    def test_only_an_admin_may_force_the_promote_form(self) -> Generator[Any, Any, None]:
        promote_id = self.ids["erp-promote"]
        # the builder page's form sends builderid; the JSON-RPC may send builderNames
        for options in ({}, {"builderid": promote_id}, {"builderNames": ["erp-promote"]}):
            assert (yield self.force(ADMIN, "stack-promote-erp", **options)), options
            assert not (yield self.force(DEVELOPER, "stack-promote-erp", **options)), options
            assert not (yield self.force(VISITOR, "stack-promote-erp", **options)), options
            assert not (yield self.force({"anonymous": True}, "stack-promote-erp", **options))

    @defer.inlineCallbacks
    def test_the_rule_is_narrow_developers_still_force_the_rest(
        self,
    ) -> Generator[Any, Any, None]:
        # acceptance promotes only what passed: whoever may force may start it
        assert (yield self.force(DEVELOPER, "stack-acceptance-erp"))
        assert (yield self.force(DEVELOPER, "force-core", builderid=self.ids["core-pg15"]))
        assert not (yield self.force(VISITOR, "stack-acceptance-erp"))

    @defer.inlineCallbacks
    def test_a_promotion_is_not_replayed_by_a_rebuild(self) -> Generator[Any, Any, None]:
        """A rebuild repeats the form's stack and channel under the admin's name."""
        assert (yield self.allowed(ADMIN, ("builds", 40), "rebuild"))
        assert not (yield self.allowed(DEVELOPER, ("builds", 40), "rebuild"))
        # a cell's build: developers may rebuild it, as before
        assert (yield self.allowed(DEVELOPER, ("builds", 41), "rebuild"))
