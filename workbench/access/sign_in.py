"""Who may use the browser app, decided once per run from plain inputs (no Streamlit here).

Three ways the app runs:

- **Sign-in** (``[auth]`` in ``.streamlit/secrets.toml``, any OpenID Connect provider): a visitor
  who is not signed in gets only the sign-in page; a signed-in user acts under their identity
  (email, else name, else subject).
- **Local mode** (no ``[auth]``, server bound to a loopback address): the OS login is the one user.
- **Anything else** (no ``[auth]``, server reachable from other machines): the app shows how to
  configure sign-in instead of the workbench, unless ``WORKBENCH_ALLOW_ANONYMOUS=true``.

``workbench.ui.shell`` only renders the :class:`Access` that :func:`decide_access` returns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AccessKind(StrEnum):
    """What the browser gets."""

    SIGN_IN = "sign_in"  # only the sign-in page
    CONFIGURE = "configure"  # only the page that says how to configure sign-in
    LOCAL = "local"  # the workbench, as the OS login (local mode)
    SIGNED_IN = "signed_in"  # the workbench, as the signed-in user
    ANONYMOUS = "anonymous"  # the workbench without sign-in, allowed by WORKBENCH_ALLOW_ANONYMOUS


@dataclass(frozen=True)
class Access:
    """The decision for one browser run: what it shows and who acts (None when no workbench shows)."""

    kind: AccessKind
    user: str | None = None

    @property
    def shows_workbench(self) -> bool:
        """True when the pages of the workbench may render."""
        return self.kind in {AccessKind.LOCAL, AccessKind.SIGNED_IN, AccessKind.ANONYMOUS}


def is_loopback(address: str | None) -> bool:
    """True when a server bound to ``address`` is reachable from this machine only.

    An empty address is not loopback: Streamlit then listens on every interface.
    """
    host = (address or "").strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def signed_in_identity(user_info: Mapping[str, Any] | None) -> str | None:
    """The identity recorded on changes (email, else name, else subject), or None when not signed in."""
    if not user_info or user_info.get("is_logged_in") is not True:
        return None
    for claim in ("email", "name", "preferred_username", "sub"):
        value = user_info.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()
    # Signed in but the provider sent no usable claim: refuse rather than record a made-up name.
    return None


def decide_access(
    *,
    auth_configured: bool,
    server_address: str | None,
    allow_anonymous: bool,
    user_info: Mapping[str, Any] | None,
    local_user: str,
) -> Access:
    """What this browser run shows, and who acts.

    ``user_info`` is ``st.user`` as a dict; ``local_user`` the OS login (``workbench.access.identity.actor``).
    """
    if auth_configured:
        identity = signed_in_identity(user_info)
        if identity is None:
            return Access(AccessKind.SIGN_IN)
        return Access(AccessKind.SIGNED_IN, identity)
    if is_loopback(server_address):
        return Access(AccessKind.LOCAL, local_user)
    if allow_anonymous:
        return Access(AccessKind.ANONYMOUS)
    return Access(AccessKind.CONFIGURE)


__all__ = ["Access", "AccessKind", "decide_access", "is_loopback", "signed_in_identity"]
