"""Who a browser run acts as for project roles, and the admins named in Settings (no DB here)."""

from __future__ import annotations

import pytest

from workbench.access.roles import Principal, is_admin_name, principal_for, subject_to_roles
from workbench.access.sign_in import Access, AccessKind
from workbench.errors import Forbidden
from workbench.settings import load_settings

ADMINS = frozenset({"root@example.com"})


def test_a_signed_in_user_is_subject_to_roles_unless_named_admin() -> None:
    alice = principal_for(Access(AccessKind.SIGNED_IN, "alice@example.com"), name="alice@example.com", admins=ADMINS)
    assert alice == Principal("alice@example.com")
    assert subject_to_roles(alice)
    root = principal_for(Access(AccessKind.SIGNED_IN, "Root@Example.com"), name="Root@Example.com", admins=ADMINS)
    assert root.is_admin and not subject_to_roles(root)


def test_local_mode_is_the_operator_and_anonymous_mode_edits_everything() -> None:
    local = principal_for(Access(AccessKind.LOCAL, "ada"), name="ada", admins=frozenset())
    assert local == Principal("ada", is_admin=True)
    anonymous = principal_for(Access(AccessKind.ANONYMOUS), name="bob", admins=ADMINS)
    assert anonymous == Principal("bob", anonymous=True)
    assert not subject_to_roles(local) and not subject_to_roles(anonymous) and not subject_to_roles(None)


@pytest.mark.parametrize("kind", [AccessKind.SIGN_IN, AccessKind.CONFIGURE])
def test_a_visitor_not_let_in_acts_as_nobody(kind: AccessKind) -> None:
    with pytest.raises(Forbidden, match="sign in first"):
        principal_for(Access(kind), name="x", admins=ADMINS)


def test_admins_come_from_workbench_admins_comma_separated() -> None:
    environ = {"WORKBENCH_ADMINS": " Root@Example.com, ops@example.com ,,", "WORKBENCH_CONFIG": "/nonexistent"}
    settings = load_settings(environ)
    assert settings.admin_names == frozenset({"root@example.com", "ops@example.com"})
    assert is_admin_name("OPS@example.com ", settings.admin_names)
    assert not is_admin_name("alice@example.com", settings.admin_names)
    assert load_settings({"WORKBENCH_CONFIG": "/nonexistent"}).admin_names == frozenset()
