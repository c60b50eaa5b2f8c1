"""Old home of the web UI login and authorization, kept as a re-export shim.

Every ``master.cfg`` written by ``anybox-ci init`` (from ``master.cfg.sample``) does
``from anybox_ci.www.htpasswd import HtpasswdAuth, authz_config, read_htgroups``, and those files
live in users' master folders: this module must keep exporting these names. New code imports
from where the code lives: :mod:`anybox_ci.www.passwords` (hash schemes),
:mod:`anybox_ci.www.auth` (the htpasswd login) and :mod:`anybox_ci.www.authz` (roles and rules).
"""

from .auth import HtpasswdAuth, HtpasswdChecker, HtpasswdFile
from .authz import (
    ADMIN_ROLE,
    AUTHENTICATED_ROLE,
    RolesFromAuthenticated,
    authz_config,
    read_htgroups,
)
from .passwords import apr1_md5, check_password, hash_password

__all__ = [
    "ADMIN_ROLE",
    "AUTHENTICATED_ROLE",
    "HtpasswdAuth",
    "HtpasswdChecker",
    "HtpasswdFile",
    "RolesFromAuthenticated",
    "apr1_md5",
    "authz_config",
    "check_password",
    "hash_password",
    "read_htgroups",
]
