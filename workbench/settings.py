"""The one Settings object: environment variables over ``workbench.toml`` over defaults.

Defaults keep every store embedded under one home folder (SQLite files and local folders);
a team points each store at a URL instead. Nothing here touches the disk until asked.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput


def default_optuna_storage(home: Path) -> str:
    """The embedded Optuna storage: a journal file under ``home`` (an ``optuna.db`` kept if present).

    Optuna's journal file takes a trial in a fraction of the time its SQLite RDB storage needs
    (about 32 ORM statements per trial there), and several local processes share it safely. A
    home that already holds an ``optuna.db`` from an earlier version keeps using it, so its
    studies stay visible.
    """
    legacy = home / "optuna.db"
    if legacy.exists():
        return f"sqlite:///{legacy}"
    return f"journal://{home / 'optuna.journal'}"


@dataclass(frozen=True)
class Settings:
    """Where every store lives and the limits the workbench enforces.

    Each field can be set by the environment variable in its metadata, or by the key of the
    same name in ``workbench.toml`` (looked up in ``WORKBENCH_CONFIG`` or the working folder).
    """

    home: Path = field(default=Path(".workbench"), metadata={"env": "WORKBENCH_HOME"})
    db_url: str = field(default="", metadata={"env": "WORKBENCH_DB_URL"})
    mlflow_tracking_uri: str = field(default="", metadata={"env": "MLFLOW_TRACKING_URI"})
    optuna_storage: str = field(default="", metadata={"env": "WORKBENCH_OPTUNA_STORAGE"})
    nats_url: str = field(default="", metadata={"env": "WORKBENCH_NATS_URL"})
    mlflow_ui_url: str = field(default="", metadata={"env": "WORKBENCH_MLFLOW_UI_URL"})
    max_upload_mb: float = field(default=200.0, metadata={"env": "WORKBENCH_MAX_UPLOAD_MB"})
    # What an upload may unpack to, checked before reading it (a small Parquet file can hold 30 M rows).
    max_upload_rows: int = field(default=10_000_000, metadata={"env": "WORKBENCH_MAX_UPLOAD_ROWS"})
    max_upload_cells: int = field(default=200_000_000, metadata={"env": "WORKBENCH_MAX_UPLOAD_CELLS"})
    max_upload_memory_mb: float = field(default=2048.0, metadata={"env": "WORKBENCH_MAX_UPLOAD_MEMORY_MB"})
    max_classes: int = field(default=50, metadata={"env": "WORKBENCH_MAX_CLASSES"})
    heartbeat_seconds: float = field(default=2.0, metadata={"env": "WORKBENCH_HEARTBEAT_SECONDS"})
    lost_after_seconds: float = field(default=4.0, metadata={"env": "WORKBENCH_LOST_AFTER_SECONDS"})
    # Seconds to wait for a store server (PostgreSQL, MLflow over HTTP, NATS) to answer before giving up.
    store_timeout_seconds: float = field(default=5.0, metadata={"env": "WORKBENCH_STORE_TIMEOUT"})
    # Where registry, deployment and alert events are posted (workbench.events): one URL or several
    # separated by commas or spaces; each attempt is kept in the delivery log.
    webhook_url: str = field(default="", metadata={"env": "WORKBENCH_WEBHOOK_URL"})
    # Attempts per event and URL; the pause doubles after each failed one (0.5 s, 1 s, 2 s, ...).
    webhook_attempts: int = field(default=3, metadata={"env": "WORKBENCH_WEBHOOK_ATTEMPTS"})
    webhook_backoff_seconds: float = field(default=0.5, metadata={"env": "WORKBENCH_WEBHOOK_BACKOFF_SECONDS"})
    webhook_timeout_seconds: float = field(default=5.0, metadata={"env": "WORKBENCH_WEBHOOK_TIMEOUT"})
    # Chunks a batch run predicts at once (0: one per usable core, at most two). See workbench.serving.batch.
    batch_workers: int = field(default=0, metadata={"env": "WORKBENCH_BATCH_WORKERS"})
    # Minutes between scheduled monitoring checks while the app is up (0: off).
    monitor_every_minutes: float = field(default=0.0, metadata={"env": "WORKBENCH_MONITOR_EVERY_MINUTES"})
    # Seconds between two rollout checks (verdict, guardrails, automatic steps) by each serving process.
    rollout_check_seconds: float = field(default=10.0, metadata={"env": "WORKBENCH_ROLLOUT_CHECK_SECONDS"})
    # A shadow process joins an idle CPU cgroup made below the serving process's, where the kernel
    # and the permissions allow one (workbench.serving._cpu_priority); false: never touch cgroups.
    shadow_cpu_group: bool = field(default=True, metadata={"env": "WORKBENCH_SHADOW_CPU_GROUP"})
    # Retraining: the smaller tuning budget and the pause between two retrains of a project.
    retrain_trials: int = field(default=5, metadata={"env": "WORKBENCH_RETRAIN_TRIALS"})
    retrain_cooldown_minutes: float = field(default=60.0, metadata={"env": "WORKBENCH_RETRAIN_COOLDOWN_MINUTES"})
    # Serve the browser app on a non-loopback address without sign-in ([auth] in .streamlit/secrets.toml):
    # off by default, so such a server shows how to configure sign-in instead. See workbench.access.sign_in.
    allow_anonymous: bool = field(default=False, metadata={"env": "WORKBENCH_ALLOW_ANONYMOUS"})
    # Folders whose files a browser user may score by server path, separated by os.pathsep (empty: none,
    # and the Deployments page offers uploads only). See workbench.access.files.
    data_roots: str = field(default="", metadata={"env": "WORKBENCH_DATA_ROOTS"})
    # Workbench admins, by the identity sign-in records (email, else name), comma-separated: they may view,
    # edit and manage the members of every project. See workbench.access.roles.
    admins: str = field(default="", metadata={"env": "WORKBENCH_ADMINS"})

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser().resolve()
        object.__setattr__(self, "home", home)
        defaults = {
            "db_url": f"sqlite:///{home / 'workbench.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "optuna_storage": default_optuna_storage(home),
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if self.max_upload_mb <= 0:
            raise InvalidInput(
                f"max_upload_mb must be a positive number of megabytes; got {self.max_upload_mb!r}. "
                "Fix WORKBENCH_MAX_UPLOAD_MB or max_upload_mb in workbench.toml.",
                field="max_upload_mb",
            )
        if not 1 <= self.webhook_attempts <= 10:
            raise InvalidInput(
                f"webhook_attempts must be between 1 and 10; got {self.webhook_attempts!r}. "
                "Fix WORKBENCH_WEBHOOK_ATTEMPTS or webhook_attempts in workbench.toml.",
                field="webhook_attempts",
            )
        if self.webhook_backoff_seconds < 0 or self.webhook_timeout_seconds <= 0:
            raise InvalidInput(
                "webhook_backoff_seconds must be 0 or more and webhook_timeout_seconds more than 0; got "
                f"{self.webhook_backoff_seconds!r} and {self.webhook_timeout_seconds!r}.",
                field="webhook_backoff_seconds" if self.webhook_backoff_seconds < 0 else "webhook_timeout_seconds",
            )
        if self.rollout_check_seconds <= 0:
            raise InvalidInput(
                f"rollout_check_seconds must be more than 0; got {self.rollout_check_seconds!r}. "
                "Fix WORKBENCH_ROLLOUT_CHECK_SECONDS or rollout_check_seconds in workbench.toml.",
                field="rollout_check_seconds",
            )
        if self.lost_after_seconds < self.heartbeat_seconds:
            raise InvalidInput(
                "lost_after_seconds must be at least heartbeat_seconds "
                f"({self.heartbeat_seconds}); got {self.lost_after_seconds}.",
                field="lost_after_seconds",
            )

    @property
    def datasets_dir(self) -> Path:
        """Folder holding every stored dataset as Parquet."""
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        """Folder holding each job's log file."""
        return self.home / "jobs"

    @property
    def artifacts_dir(self) -> Path:
        """Root of the MLflow artifact store used by experiments the workbench creates."""
        return self.home / "mlartifacts"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def embedded_db(self) -> bool:
        """True when the workbench DB is a SQLite file (which is then upgraded automatically)."""
        return self.db_url.startswith("sqlite")

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        """The webhook URLs events are posted to, from ``webhook_url`` (commas or spaces between them)."""
        return tuple(part for part in self.webhook_url.replace(",", " ").split() if part)

    @property
    def admin_names(self) -> frozenset[str]:
        """The admins' identities, from the comma-separated ``admins`` (compared case-insensitively)."""
        return frozenset(name.strip().lower() for name in self.admins.split(",") if name.strip())

    def ensure_home(self) -> None:
        """Create the home folder and its sub-folders; called by commands, never at import."""
        for folder in (self.home, self.datasets_dir, self.jobs_dir, self.artifacts_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain values, for ``workbench up --json`` and the README."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"0", "false", "no", "off"})


def _coerce(name: str, raw: Any, default: Any, *, env: str) -> Any:
    if isinstance(default, bool):
        word = str(raw).strip().lower()
        if word not in _YES | _NO:  # a typo must not silently read as "no"
            raise InvalidInput(
                f"Setting {name} ({env}) must be true or false (also 1/0, yes/no, on/off); got {raw!r}. "
                f"Fix {env} or {name} in workbench.toml.", field=name)
        return word in _YES
    try:
        if isinstance(default, Path):
            return Path(str(raw))
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"Setting {name} must be a {type(default).__name__}; got {raw!r}.", field=name
        ) from exc
    return str(raw)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``) and an optional ``workbench.toml``."""
    env = dict(os.environ if environ is None else environ)
    config_path = Path(env.get("WORKBENCH_CONFIG", "workbench.toml"))
    from_file: dict[str, Any] = {}
    if config_path.is_file():
        try:
            from_file = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{config_path} is not valid TOML: {exc}. Fix the file or remove it.") from exc
        from_file = from_file.get("workbench", from_file)
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(from_file) - set(known))
    if unknown:
        raise InvalidInput(
            f"{config_path} has unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(known))}.",
            field=unknown[0],
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        raw = env.get(f.metadata["env"]) or from_file.get(name)
        if raw not in (None, ""):
            values[name] = _coerce(name, raw, f.default, env=f.metadata["env"])
    return Settings(**values)


def environment_variables() -> tuple[str, ...]:
    """Every environment variable that changes the settings (``WORKBENCH_CONFIG`` included)."""
    return (*(f.metadata["env"] for f in fields(Settings) if "env" in f.metadata), "WORKBENCH_CONFIG")


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with the stores pinned to ``settings``, for a child process.

    ``settings`` may not come from the environment (a test's, a command's override): the child
    must read and write the same home, workbench DB and MLflow store as its parent.
    """
    env = dict(os.environ)
    env.update(WORKBENCH_HOME=str(settings.home), WORKBENCH_DB_URL=settings.db_url,
               MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``."""
    return load_settings()


def override(**changes: Any) -> Settings:
    """A copy of the current settings with ``changes`` applied (for tests and sub-commands)."""
    return replace(get_settings(), **changes)
