"""Access: who is acting. :mod:`workbench.access.identity` names the local (OS) user recorded on changes."""

__all__ = ["identity"]
