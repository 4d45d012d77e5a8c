"""Bearer tokens (issue 12 item 5): generated, read from a file or the environment, stored only as a salted hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.serving.tokens import (
    TOKEN_ENV,
    bearer_token,
    check_token_hash,
    generate_token,
    hash_token,
    read_token_file,
    serve_token,
    verify_token,
)

TOKEN = "a-long-enough-test-token-0123456789"


def test_only_a_salted_sha256_is_stored_and_it_verifies_in_constant_time() -> None:
    first, second = hash_token(TOKEN), hash_token(TOKEN)
    assert TOKEN not in first
    scheme, salt, digest = first.split("$")
    assert scheme == "sha256" and len(salt) == 32 and len(digest) == 64
    assert digest == hashlib.sha256(bytes.fromhex(salt) + TOKEN.encode()).hexdigest()
    assert first != second  # salted: the same token never gives the same stored value
    assert verify_token(first, TOKEN) and verify_token(second, TOKEN)
    assert not verify_token(first, TOKEN + "x")
    assert not verify_token(first, TOKEN[:-1])
    assert not verify_token(first, None) and not verify_token(first, "")
    assert check_token_hash(first) == first


def test_a_plaintext_token_is_refused_where_its_hash_belongs() -> None:
    with pytest.raises(InvalidInput, match="not the token itself") as err:
        check_token_hash(TOKEN)
    assert err.value.field == "token_hash"


def test_generated_tokens_are_long_random_and_hashable() -> None:
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) >= 40 for t in tokens)
    token = tokens.pop()
    assert verify_token(hash_token(token), token)


@pytest.mark.parametrize("bad", ["short", "has a space in the middle!", "x" * 1001, "é" * 20])
def test_a_weak_or_unsendable_token_is_refused_with_how_to_make_one(bad: str) -> None:
    with pytest.raises(InvalidInput, match="16-1000 printable characters") as err:
        hash_token(bad)
    assert err.value.field == "token" and "secrets.token_urlsafe" in str(err.value)


def test_bearer_header_parsing() -> None:
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert bearer_token(f"bearer  {TOKEN} ") == TOKEN
    assert bearer_token(TOKEN) is None and bearer_token(None) is None and bearer_token("Bearer ") is None
    assert bearer_token(f"Basic {TOKEN}") is None


def test_token_from_a_file_then_the_environment_else_generated(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    assert read_token_file(path) == TOKEN
    from_file = serve_token(path, environ={TOKEN_ENV: "another-token-from-the-environment"})
    assert (from_file.token, from_file.source, from_file.generated) == (TOKEN, "file", False)
    from_env = serve_token(None, environ={TOKEN_ENV: f" {TOKEN} "})
    assert (from_env.token, from_env.source) == (TOKEN, "environment")
    generated = serve_token(None, environ={TOKEN_ENV: ""})
    assert generated.generated and len(generated.token) >= 40
    with pytest.raises(InvalidInput, match="environment variable WORKBENCH_SERVE_TOKEN"):
        serve_token(None, environ={TOKEN_ENV: "short"})


def test_an_unreadable_or_weak_token_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="could not be read") as err:
        read_token_file(tmp_path / "absent")
    assert err.value.field == "token_file"
    weak = tmp_path / "weak"
    weak.write_text("1234\n")
    with pytest.raises(InvalidInput, match="weak"):
        read_token_file(weak)
