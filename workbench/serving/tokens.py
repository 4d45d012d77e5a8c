"""Bearer tokens of web deployments: generated (or read from a file or the environment), shown once, stored hashed.

The plaintext token never reaches the jobs table, a job's log, a deployment's config or a
process's argv: the launcher keeps only :func:`hash_token`'s salted SHA-256 in the deployment's
config, and the serving process checks each request against that hash with
:func:`verify_token` (a constant-time comparison). So the process never needs the plaintext.

A fast hash is enough here because a token is long and random (a generated one carries 256
bits; one supplied by an operator must have at least :data:`MIN_TOKEN_LENGTH` characters), so
the hash cannot be reversed by guessing; and a slow hash (scrypt) on every request would cost
tens of milliseconds of CPU per call, which any caller could trigger with wrong tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidInput

# The environment variable `workbench serve` reads the token from (never from argv: `ps` shows argv
# to every local user, while a process's environment is readable only by its owner).
TOKEN_ENV = "WORKBENCH_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 1000
_SCHEME = "sha256"
# Printable ASCII without spaces: what an HTTP header carries unchanged.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_HASH_FORMAT = re.compile(rf"{_SCHEME}\$[0-9a-f]{{32}}\$[0-9a-f]{{64}}")
_HOW_TO_MAKE_ONE = (
    "let the workbench generate one (start without a token), or make one with "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


def generate_token() -> str:
    """A new random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_token(token: str, *, source: str = "token") -> str:
    """``token`` without surrounding whitespace, refused unless it is 16-1000 printable characters.

    ``source`` names where it came from (a file, an environment variable) for the message.
    """
    token = token.strip()
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(token):
        raise InvalidInput(
            f"the bearer token from {source} must be {MIN_TOKEN_LENGTH}-{MAX_TOKEN_LENGTH} printable characters "
            f"without spaces; got {len(token)} characters. To fix it, {_HOW_TO_MAKE_ONE}.",
            field="token",
        )
    return token


def hash_token(token: str) -> str:
    """The salted SHA-256 of ``token`` as ``sha256$<salt hex>$<digest hex>``: what is stored instead of it."""
    token = check_token(token)
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(salt + token.encode()).hexdigest()
    return f"{_SCHEME}${salt.hex()}${digest}"


def check_token_hash(token_hash: str) -> str:
    """``token_hash`` if it is a hash made by :func:`hash_token`; InvalidInput otherwise.

    Guards against a plaintext token passed where its hash belongs (it would never match).
    """
    if not isinstance(token_hash, str) or not _HASH_FORMAT.fullmatch(token_hash):
        raise InvalidInput(
            "token_hash must be a hash made by workbench.serving.tokens.hash_token "
            "('sha256$<32 hex>$<64 hex>'), not the token itself; hash the token first.",
            field="token_hash",
        )
    return token_hash


def verify_token(token_hash: str, token: str | None) -> bool:
    """True when ``token`` is the one ``token_hash`` was made from (compared in constant time)."""
    if not token:
        return False
    _, salt_hex, digest_hex = token_hash.split("$")
    digest = hashlib.sha256(bytes.fromhex(salt_hex) + token.strip().encode()).hexdigest()
    return hmac.compare_digest(digest, digest_hex)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip() or None


def read_token_file(path: Path) -> str:
    """The token kept in the file ``path`` (its content, surrounding whitespace removed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"--token-file {str(path)!r} could not be read ({exc.__class__.__name__}); give a readable text file "
            "holding the token (keep it private: chmod 600).",
            field="token_file",
        ) from exc
    return check_token(text, source=f"the file {str(path)!r}")


@dataclass(frozen=True)
class ServeToken:
    """The token a service is started with: its plaintext (to show once when generated) and its source."""

    token: str
    source: str  # "file", "environment" or "generated"

    @property
    def generated(self) -> bool:
        """True when the workbench made the token, so it must be shown to the user (once)."""
        return self.source == "generated"


def serve_token(token_file: Path | None = None, environ: Mapping[str, str] | None = None) -> ServeToken:
    """The token to serve with: from ``token_file``, else the ``WORKBENCH_SERVE_TOKEN`` variable, else generated.

    An explicit file wins over the ambient environment variable.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        return ServeToken(read_token_file(token_file), "file")
    from_env = environ.get(TOKEN_ENV, "")
    if from_env.strip():
        return ServeToken(check_token(from_env, source=f"the environment variable {TOKEN_ENV}"), "environment")
    return ServeToken(generate_token(), "generated")
