"""One URL rule (``core.vcs.check_url``) for mirrored remotes and auto-watch discoveries."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from anybox_ci.changes.layout import Remote
from anybox_ci.core.discovered import parse_discovered
from anybox_ci.core.vcs import check_url

URLS = {
    "https://forge.example.com/erp.git": True,
    "git@forge.example.com:erp.git": True,
    "/srv/git/erp.git": True,
    "file:///srv/git/e%20rp.git": True,
    "-oProxyCommand=touch pwned": False,
    "--upload-pack=touch": False,
    "https://forge.example.com/e rp.git": False,
    " https://forge.example.com/erp.git": False,
    "https://forge.example.com/erp.git\n": False,
    "https://forge.example.com/\terp.git": False,
    "https://forge.example.com/\x7ferp.git": False,
    "": False,
}


def _accepts(make: Callable[..., object], *args: object) -> bool:
    try:
        make(*args)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("url", list(URLS))
def test_remotes_and_discoveries_agree(url: str) -> None:
    source = {"vcs": "git", "url": url, "branch": "main"}
    verdicts = {
        "check_url": check_url(url) is None,
        "remote": _accepts(Remote, "git", url),
        "auto-watch": _accepts(parse_discovered, json.dumps({"sources": [source]})),
    }
    assert verdicts == dict.fromkeys(verdicts, URLS[url]), url
