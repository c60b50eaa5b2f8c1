"""pgdb summarises psql's failure by the line that says what went wrong, not its last line."""

from __future__ import annotations

from build_utils.pgdb import first_error


def test_the_refusal_is_named_not_the_password_file() -> None:
    stderr = (
        'psql: error: connection to server on socket "/s/.s.PGSQL.5432" failed: '
        'FATAL:  password authentication failed for user "ci"\n'
        'password retrieved from file "/b/.anybox-ci-pgpass"\n'
    )
    assert "password authentication failed" in first_error(stderr)


def test_sql_errors_and_plain_lines() -> None:
    assert first_error('ERROR:  template database "t" does not exist\n').startswith("ERROR:")
    assert first_error("\nsomething odd\n") == "something odd"
    assert first_error("") == ""
