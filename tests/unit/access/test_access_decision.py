"""The browser app's access decision (workbench.access.sign_in), as a pure function of its inputs."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.access.sign_in import Access, AccessKind, decide_access, is_loopback, signed_in_identity

ALICE = {"is_logged_in": True, "email": "alice@example.com", "name": "Alice", "sub": "alice"}


def _decide(
    *, auth: bool, address: str | None = "127.0.0.1", anonymous: bool = False, user: dict[str, Any] | None = None
) -> Access:
    return decide_access(
        auth_configured=auth, server_address=address, allow_anonymous=anonymous, user_info=user, local_user="osuser"
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "workbench.example.com"])
def test_addresses_other_machines_may_reach(address: str | None) -> None:
    # Empty means every interface to Streamlit; a host name may resolve to any of them.
    assert not is_loopback(address)


def test_local_mode_is_the_os_login_on_loopback_without_auth() -> None:
    decision = _decide(auth=False, address="127.0.0.1", user={"email": "test@example.com"})
    assert decision == Access(AccessKind.LOCAL, "osuser")
    assert decision.shows_workbench


@pytest.mark.parametrize("address", [None, "0.0.0.0", "192.168.1.10"])
def test_non_loopback_without_auth_shows_how_to_configure(address: str | None) -> None:
    decision = _decide(auth=False, address=address)
    assert decision == Access(AccessKind.CONFIGURE)
    assert not decision.shows_workbench


def test_allow_anonymous_opens_a_non_loopback_server_without_auth() -> None:
    decision = _decide(auth=False, address="0.0.0.0", anonymous=True)
    assert decision == Access(AccessKind.ANONYMOUS)
    assert decision.shows_workbench


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("user", [None, {}, {"is_logged_in": False}, {"email": "test@example.com"}])
def test_auth_configured_and_not_signed_in_gets_only_the_sign_in_page(
    address: str, user: dict[str, Any] | None
) -> None:
    # Loopback, allow_anonymous or a claim without is_logged_in never skip the sign-in once [auth] is set.
    decision = _decide(auth=True, address=address, anonymous=True, user=user)
    assert decision == Access(AccessKind.SIGN_IN)
    assert not decision.shows_workbench


def test_signed_in_user_acts_under_their_email() -> None:
    assert _decide(auth=True, address="0.0.0.0", user=ALICE) == Access(AccessKind.SIGNED_IN, "alice@example.com")


@pytest.mark.parametrize(
    ("claims", "identity"),
    [
        ({"email": "a@x.org", "name": "A"}, "a@x.org"),
        ({"email": "  ", "name": "Ann"}, "Ann"),
        ({"preferred_username": "ann"}, "ann"),
        ({"sub": "1234"}, "1234"),
        ({}, None),  # signed in, but no claim to record: not let in under a made-up name
        ({"email": 5}, None),
    ],
)
def test_identity_claims_in_order(claims: dict[str, Any], identity: str | None) -> None:
    assert signed_in_identity({"is_logged_in": True, **claims}) == identity


def test_is_logged_in_must_be_true_itself() -> None:
    assert signed_in_identity({"is_logged_in": "yes", "email": "a@x.org"}) is None
    assert _decide(auth=True, user={"is_logged_in": True}) == Access(AccessKind.SIGN_IN)
