"""Which PostgreSQL the test database really is on.

The CI sets PG_VERSION (e.g. ``15`` or ``13.23``) for each cell of its matrix: the test
fails when the server's major version is another one. Without PG_VERSION (a developer's
run) it logs the server's version and only checks Odoo 18's minimum, PostgreSQL 12.
"""

import logging
import os

from odoo.tests import TransactionCase, tagged

_logger = logging.getLogger(__name__)


def major_of(version):
    """'15' or '15.18' -> '15'; before PostgreSQL 10 the major had two parts: '9.6.24' -> '9.6'."""
    parts = version.strip().split(".")
    return ".".join(parts[:2]) if parts[0].isdigit() and int(parts[0]) < 10 else parts[0]


@tagged("anybox_ci")
class TestPostgreSQL(TransactionCase):
    def test_server_major_version(self):
        self.env.cr.execute("SHOW server_version_num")
        num = int(self.env.cr.fetchone()[0])
        self.env.cr.execute("SHOW server_version")
        full = self.env.cr.fetchone()[0]
        major = str(num // 10000) if num >= 100000 else f"{num // 10000}.{num // 100 % 100}"
        _logger.info("PostgreSQL server %s (server_version_num %s, major %s)", full, num, major)
        self.assertGreaterEqual(num, 120000, f"Odoo 18 needs PostgreSQL 12 or later, not {full}")
        expected = os.environ.get("PG_VERSION", "").strip()
        if not expected:
            _logger.info("PG_VERSION is not set: the server's major %s is not compared", major)
            return
        self.assertEqual(
            major,
            major_of(expected),
            f"PG_VERSION={expected} but the test database is on PostgreSQL {full}",
        )
