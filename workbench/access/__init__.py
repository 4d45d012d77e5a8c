"""Access: who is acting, and what a browser user may touch.

- :mod:`workbench.access.identity`: the local (OS) user recorded on changes made from the CLI and jobs.
- :mod:`workbench.access.files`: the browser's file sandbox (data roots to read, the project's own
  folders to write, error messages that never quote a file).
- :mod:`workbench.access.sign_in`: who may see the app (sign-in page, configure-sign-in page, local mode,
  signed-in user), decided as a pure function the UI renders.
- :mod:`workbench.access.roles`: project roles (owner, editor, viewer) and admins; the services that change
  a project call its ``require``.
"""

__all__ = ["files", "identity", "roles", "sign_in"]
