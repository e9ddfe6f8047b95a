"""Tokens we issue."""

from __future__ import annotations

from ems.ocpi.tokens import new_token


def test_tokens_are_printable_unique_and_never_start_with_a_dash() -> None:
    tokens = [new_token() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    assert all(not t.startswith("-") and t.isprintable() and 0 < len(t) <= 64 for t in tokens)
