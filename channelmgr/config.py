"""How the daemon runs: config.yaml plus environment overrides.

Secrets never live in this file: a channel names the *environment variables* (or files)
that hold its credentials. Environment overrides:

- ``CHANNELMGR_DATABASE_URL`` replaces ``database.url``;
- ``CHANNELMGR_MAPPINGS_DIR`` replaces ``mappings_dir``;
- any setting as ``CHANNELMGR__SECTION__KEY=value`` (double underscores between levels,
  e.g. ``CHANNELMGR__HTTP__PORT=9000`` or ``CHANNELMGR__CHANNELS__CTRIP__ENABLED=false``);
  values are read as YAML scalars, so ``false`` and ``30`` mean what they look like.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channelmgr import yamlfile

CHANNEL_NAMES = ("booking", "ctrip", "fliggy", "meituan")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseConfig(_Strict):
    url: str = "sqlite:///var/channelmgr.db"
    busy_timeout_ms: int = Field(10_000, ge=0)
    pool_size: int = Field(10, ge=1)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError(
                f"the database url {v!r} is neither sqlite:///path nor postgresql://host/db"
            )
        return v


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)


class SecurityConfig(_Strict):
    data_key_env: str = "CHANNELMGR_DATA_KEY"
    data_key_file: str = "var/data.key"
    operator_token_env: str = "CHANNELMGR_OPERATOR_TOKEN"


class LogConfig(_Strict):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class SyncConfig(_Strict):
    flush_interval_seconds: float = Field(2.0, gt=0)
    horizon_days: int = Field(365, ge=1, le=730)
    nightly_full_sync_at: str = "03:30"
    watchdog_interval_seconds: float = Field(300, gt=0)
    # drift read-backs per channel: spread over the interval, at most this many a second
    # (a round of 10,000 properties then takes 10,000 / this; issue 13)
    readbacks_per_second: float = Field(1.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    breaker_failures: int = Field(5, ge=1)
    # coalescing (issue 13): a burst of one property goes after this much quiet; a bulk over
    # many properties after the outbox has been quiet coalesce_bulk_seconds; none waits more
    # than coalesce_max_seconds; closures and lone changes never wait
    coalesce_seconds: float = Field(0.4, ge=0, le=10)
    coalesce_bulk_seconds: float = Field(1.5, ge=0, le=30)
    coalesce_max_seconds: float = Field(20.0, ge=0, le=120)
    breaker_reset_seconds: float = Field(30, gt=0)
    claim_lease_seconds: float = Field(60, gt=0)
    shutdown_grace_seconds: float = Field(10, ge=0)

    @field_validator("nightly_full_sync_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            hh, mm = v.split(":")
            assert 0 <= int(hh) < 24 and 0 <= int(mm) < 60
        except Exception:
            raise ValueError(f"nightly_full_sync_at must be a time like 03:30, not {v!r}") from None
        return v


class DemoConfig(_Strict):
    synthetic_guests: bool = False
    bookings_per_minute: float = Field(6, ge=0)
    seed: int | None = None


class WebConfig(_Strict):
    """The operations console and operator API (issue 11, channelmgr/web)."""

    # who may read /metrics: loopback addresses only, a bearer API token, or anyone
    metrics_access: Literal["loopback", "token", "open"] = "loopback"
    session_hours: float = Field(12, gt=0, le=24 * 30)
    # failed logins allowed per minute, per account name and per remote address; then 429
    login_failures_per_minute: int = Field(5, ge=1)


class SettlementConfig(_Strict):
    """Issue 14 (channelmgr.reports.settlement): per channel, which CSV header holds each field of an
    OTA statement (ota_id, hotel, checkin, checkout, amount, commission, currency); the defaults
    are what each sandbox exports at GET /_sandbox/statement, a channel given here overrides them."""

    columns: dict[str, dict[str, str]] = Field(default_factory=dict)


class RetentionConfig(_Strict):
    """What the daily prune keeps (issue 13, channelmgr/retention): settled outbox rows and
    sync-log bodies older than ``older_than_days`` go; the journal only with ``journal_days``."""

    older_than_days: int | None = Field(90, ge=1, description="null: never prune")
    journal_days: int | None = Field(None, ge=30, description="null: the journal is kept")
    prune_at: str = "04:30"

    @field_validator("prune_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            hh, mm = v.split(":")
            assert 0 <= int(hh) < 24 and 0 <= int(mm) < 60
        except Exception:
            raise ValueError(f"prune_at must be a time like 04:30, not {v!r}") from None
        return v


class Credentials(_Strict):
    """Names of environment variables (or files) holding secrets, never the secrets."""

    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    key_env: str | None = None
    secret_env: str | None = None
    session_env: str | None = None
    file: str | None = Field(None, description="a file of KEY=VALUE lines, read at start")


class ChannelConfig(_Strict):
    enabled: bool = True
    sandbox: bool = Field(False, description="start a loopback sandbox of this OTA and use it")
    endpoint: str | None = None
    credentials: Credentials = Credentials()
    pull_interval_seconds: float = Field(20, gt=0)
    timeout_seconds: float = Field(15, gt=0)
    # the longest stay this OTA sells; a booking over it is kept for a person, not applied
    max_stay_nights: int = Field(90, ge=1, le=3000)
    options: dict[str, Any] = Field(default_factory=dict)


from channelmgr.desk.settings import DeskConfig  # noqa: E402  (issue 12: the reservations desk)


class Config(_Strict):
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    mappings_dir: str = "mappings"
    security: SecurityConfig = SecurityConfig()
    log: LogConfig = LogConfig()
    sync: SyncConfig = SyncConfig()
    demo: DemoConfig = DemoConfig()
    web: WebConfig = WebConfig()
    desk: DeskConfig = DeskConfig()
    retention: RetentionConfig = RetentionConfig()
    settlement: SettlementConfig = SettlementConfig()
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)

    # where the file was read from; relative paths in it are relative to its folder
    source: str | None = Field(None, exclude=True)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, v: dict[str, ChannelConfig]) -> dict[str, ChannelConfig]:
        from adapters.base.registry import available

        known = set(available()) | set(CHANNEL_NAMES)
        for name in v:
            if name not in known:
                raise ValueError(
                    f"'{name}' is not a channel this installation knows; "
                    f"known channels: {', '.join(sorted(known))}"
                )
        return v

    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def resolve(self, p: str) -> Path:
        path = Path(p)
        return path if path.is_absolute() else self.base_dir() / path

    def database_url(self) -> str:
        """The URL with a relative SQLite path made absolute against the config's folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix):]))
        return url


def _apply_env(raw: dict[str, Any], env: dict[str, str]) -> None:
    if env.get("CHANNELMGR_DATABASE_URL"):
        raw.setdefault("database", {})["url"] = env["CHANNELMGR_DATABASE_URL"]
    if env.get("CHANNELMGR_MAPPINGS_DIR"):
        raw["mappings_dir"] = env["CHANNELMGR_MAPPINGS_DIR"]
    for key, value in env.items():
        if not key.startswith("CHANNELMGR__"):
            continue
        parts = [p.lower() for p in key[len("CHANNELMGR__"):].split("__") if p]
        if not parts:
            continue
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            parsed = yamlfile.plain(yamlfile.load(f"${key}", value)) if value != "" else ""
            node[parts[-1]] = parsed


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read config.yaml (or the defaults when the file is absent and not asked for)."""
    env = dict(os.environ) if env is None else env
    data: Any = {}
    source = None
    if path is not None or Path("config.yaml").exists():
        source = str(path or "config.yaml")
        data = yamlfile.load(source)
    tree = data if data is not None else {}
    if not isinstance(tree, dict):
        raise yamlfile.YamlFileError(
            [yamlfile.Problem(source or "config.yaml", 1, 1,
                              "the file must be a block of 'key: value' settings")])
    raw = yamlfile.plain(tree)
    _apply_env(raw, env)
    # validate against the positions of the file (env overrides point at the key they replace)
    try:
        cfg = Config.model_validate(raw)
    except Exception:
        # re-run through the locating validator to report file:line:col for every error
        yamlfile.validate(Config, _overlay(tree, raw), source or "config.yaml")
        raise
    cfg.source = source
    return cfg


def _overlay(tree: Any, raw: dict[str, Any]) -> Any:
    """The ruamel tree with env overrides written into it, positions kept."""
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(tree, CommentedMap):
        return raw

    def merge(node: CommentedMap, values: dict[str, Any]) -> None:
        for k, v in values.items():
            if isinstance(v, dict) and isinstance(node.get(k), CommentedMap):
                merge(node[k], v)
            elif node.get(k) != v:
                node[k] = v

    merge(tree, raw)
    return tree


def read_secret(creds: Credentials, field: str, env: dict[str, str] | None = None) -> str | None:
    """A credential by the env var its config names, or from the credentials file."""
    env = dict(os.environ) if env is None else env
    var = getattr(creds, f"{field}_env", None)
    if var and env.get(var):
        return env[var]
    if creds.file:
        try:
            for line in Path(creds.file).read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                if k.strip() in (var, field):
                    return v.strip()
        except FileNotFoundError:
            return None
    return None
