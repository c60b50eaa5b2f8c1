"""URL rewrite rules (``url-rewrites.cfg``): workers and mirrors fetch from a rewritten URL.

``PREFIX -> REPLACEMENT`` lines, like git's ``insteadOf``: changes keep naming the original
repository, while fetches go to a mirror.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RewriteRule:
    """Replace the URL prefix ``prefix`` by ``replacement`` (plain text, like git's insteadOf)."""

    prefix: str
    replacement: str


def parse_rewrite_rules(text: str, source: str = "<rewrite rules>") -> list[RewriteRule]:
    """Parse ``PREFIX -> REPLACEMENT`` lines; blank lines and ``#`` comments are skipped."""
    rules: list[RewriteRule] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        prefix, arrow, replacement = (p.strip() for p in stripped.partition("->"))
        if not arrow or not prefix or not replacement or "->" in replacement:
            raise ValueError(
                f"{source}:{lineno}: expected 'PREFIX -> REPLACEMENT', got {stripped!r}"
            )
        if any(c.isspace() for c in prefix + replacement):
            raise ValueError(f"{source}:{lineno}: URLs in rewrite rules cannot contain spaces")
        if prefix in seen:
            raise ValueError(
                f"{source}:{lineno}: prefix {prefix!r} already has a rule on line {seen[prefix]}"
            )
        seen[prefix] = lineno
        rules.append(RewriteRule(prefix, replacement))
    return rules


def rewrite_url(url: str, rules: Iterable[RewriteRule]) -> str:
    """Apply the rule with the longest matching prefix, if any."""
    best: RewriteRule | None = None
    for rule in rules:
        if url.startswith(rule.prefix) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return url if best is None else best.replacement + url[len(best.prefix) :]
