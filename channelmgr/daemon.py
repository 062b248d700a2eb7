"""The daemon: `channelmgr run`.

What runs, and who owns it:
- aiohttp serves the OTAs' pushes (/inbound/<channel>/...), /health and /api/status;
- one PushWorker per channel drains the outbox (woken at once by a change in this
  process, and every flush interval for changes made by other processes);
- APScheduler 3 (AsyncIOScheduler) runs the pulls of pull channels, the nightly full sync,
  the watchdog (stale claims, drift read-back, systemd watchdog) and the demo guests;
- with ``sandbox: true`` a channel's faithful fake runs on loopback and the adapter
  talks to it over real HTTP with fresh random credentials.

Signals: SIGTERM/SIGINT stop taking work, finish or release what is in flight within
``sync.shutdown_grace_seconds`` and exit 0; SIGHUP reloads the mappings. A crash at any
point loses nothing: pushes are leased outbox rows, bookings are unacknowledged until
committed, and a restart resumes both.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from adapters.base.contract import ChannelSettings
from adapters.base.registry import available, load
from adapters.base.sandbox import SandboxCatalog, SandboxHotel
from channelmgr import heap
from channelmgr.config import ChannelConfig, Config, load_config, read_secret
from channelmgr.ledger import models as m
from channelmgr.mapping import MappingSet
from channelmgr.runtime import Runtime
from channelmgr.sync.limits import CircuitBreaker
from channelmgr.sync.push import ChannelRuntime, PushSettings, PushWorker
from channelmgr.sync.receiver import Receiver
from channelmgr.sync.snapshots import SharedSnapshots
from channelmgr.sync.synclog import SyncLog
from channelmgr.tasks import bounded, cancel_and_wait, end_leftover_tasks

log = structlog.get_logger("channelmgr.daemon")

SECRET_FIELDS = ("username", "password", "token", "key", "secret", "session")


class StartupError(RuntimeError):
    """The daemon cannot start for a reason the operator fixes; the CLI prints it as a sentence."""


def sandbox_catalog(ms: MappingSet | None, channel: str) -> SandboxCatalog:
    """The hotels, rooms and rates a sandbox of ``channel`` knows: the mapped OTA codes."""
    hotels: dict[str, SandboxHotel] = {}
    for pm in (ms.properties.values() if ms else ()):
        ch = pm.channel(channel)
        if ch is None:
            continue
        rooms = {ota_room: [ota_rate for local_rate, ota_rate in ch.rates.items()
                            if pm.rate_plans[local_rate].room_type == local_room]
                 for local_room, ota_room in ch.rooms.items()}
        hotels[ch.hotel_id] = SandboxHotel(code=ch.hotel_id, currency=ch.price.currency or pm.currency,
                                           timezone=pm.timezone, rooms=rooms)
    return SandboxCatalog(hotels)


def channel_credentials(name: str, cfg: ChannelConfig, env: dict[str, str] | None = None) -> dict[str, str]:
    creds = {}
    for f in SECRET_FIELDS:
        v = read_secret(cfg.credentials, f, env)
        if v:
            creds[f] = v
    return creds


def sd_notify(message: str) -> None:
    """systemd Type=notify in a dozen lines: READY=1, STOPPING=1, WATCHDOG=1."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        pass


class Daemon:
    def __init__(self, config: Config, *, push_settings: PushSettings | None = None):
        self.config = config
        self.run_id = uuid.uuid4().hex[:12]
        self.rt: Runtime | None = None
        self.mappings: MappingSet | None = None
        self.channels: dict[str, ChannelRuntime] = {}
        self.workers: dict[str, PushWorker] = {}
        self.worker_tasks: list[asyncio.Task] = []
        self.snapshots: SharedSnapshots | None = None
        self.synclog: SyncLog | None = None
        self.process = None  # channelmgr.sync.processes.ProcessRegistry: claims name it
        self.receiver: Receiver | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.http: web.AppRunner | None = None
        self.base_url: str | None = None
        self.reloader = None
        self._reload_pending: str | None = None
        self._ready = False  # start() finished
        self._stop_requested: str | None = None  # SIGTERM/SIGINT that came during start()
        self._watch_task: asyncio.Task | None = None
        self._clock_task: asyncio.Task | None = None
        self.clock_guard = None  # channelmgr.clockguard.ClockGuard, made with the scheduler
        self._drift_tasks: dict[str, asyncio.Task] = {}  # a drift round per read-back channel
        self._stopped = asyncio.Event()
        self._push_settings = push_settings
        self.demo = None
        self.desk = None  # channelmgr.desk.service.Desk (issue 12), made at start
        self.started_at = time.monotonic()
        self._done = asyncio.Event()

    # ---- start --------------------------------------------------------------------
    async def start(self) -> None:
        structlog.contextvars.bind_contextvars(run_id=self.run_id)
        # signals are caught before anything can send them (/health answers before start-up
        # is over): a reload is taken up once the reloader runs, a stop once start-up ends
        self._install_signals()
        cfg = self.config
        self.rt = await Runtime.open(config=cfg, schema="auto")
        self.mappings = self.rt.mappings or await self._last_good_mappings()
        if self.rt.mapping_errors:
            for line in self.rt.mapping_errors:
                log.error("mapping refused; the last good version stays in force", problem=line)
        if self.mappings is None:
            raise StartupError(f"no valid mappings in {cfg.resolve(cfg.mappings_dir)} and none in force from an "
                               "earlier run: fix the problems above (`channelmgr mappings check` lists them)")
        self.synclog = SyncLog(self.rt.db, self.run_id, self._hotel_to_property)
        self.synclog.start()
        from channelmgr.sync.processes import ProcessRegistry

        self.process = ProcessRegistry(self.rt.db, self.run_id)
        await self.process.start()
        self.receiver = Receiver(self.rt.ledger, lambda: self.mappings, on_committed=self.wake_all,
                                 max_stay_nights={n: c.max_stay_nights for n, c in cfg.channels.items()},
                                 booking_id_hint=self._booking_id_hint)
        from channelmgr.desk.service import Desk  # issue 12: the reservations desk

        self.desk = Desk(self.rt.ledger, cfg.desk, lambda: self.mappings)
        await self._start_http()
        await self._start_channels()
        await self._release_previous_claims()
        await self._reprocess_received()
        self._start_workers()
        self._start_scheduler()
        await self._start_reloader()
        self._ready = True
        if self._stop_requested:
            asyncio.ensure_future(self.stop(reason=self._stop_requested))
            return
        sd_notify("READY=1")
        log.info("channelmgr is running", http=self.base_url, channels=sorted(self.channels),
                 properties=sorted(self.mappings.properties), mappings=self.mappings.fingerprint,
                 database=self.rt.db.dialect)

    async def _last_good_mappings(self) -> MappingSet | None:
        """The version in force before this start, when mappings/ is broken now."""
        import tempfile
        from pathlib import Path

        from channelmgr.mapping import load_mappings

        version = await self.rt.ledger.mapping_in_force()
        if not version:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in version["files"].items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
            return load_mappings(tmp)

    def _booking_id_hint(self, channel: str, raw: bytes) -> str | None:
        """The OTA's booking id in a message its adapter cannot read whole (best effort)."""
        chrt = self.channels.get(channel)
        hint = getattr(chrt.adapter, "booking_id_hint", None) if chrt else None
        return hint(raw) if hint else None

    def _hotel_to_property(self, channel: str, hotel: str) -> str | None:
        pm = self.mappings.by_hotel(channel, hotel) if self.mappings else None
        return pm.code if pm else None

    async def _start_http(self) -> None:
        app = web.Application(client_max_size=32 * 1024 ** 2)
        app.add_routes([web.get("/health", self._h_health), web.get("/api/status", self._h_status)])
        from channelmgr.web import mount_web

        mount_web(app, self)  # login in front of all but /health, /metrics, /inbound; /api/v1; /metrics
        self._inbound_app = app
        for name, ccfg in self.config.channels.items():
            if not ccfg.enabled or name not in available():
                continue
            # the inbound routes need the adapter; create it now, endpoint filled in later
            cls = load(name)
            settings = ChannelSettings(name, ccfg.endpoint or "http://127.0.0.1:9", {}, dict(ccfg.options),
                                       ccfg.timeout_seconds)
            adapter = cls(settings, self.synclog.observer(name))
            self.channels[name] = ChannelRuntime(
                name, adapter, CircuitBreaker(self.config.sync.breaker_failures,
                                              self.config.sync.breaker_reset_seconds))
            routes = adapter.inbound_routes(self.receiver)
            if routes:
                # the handlers read their bodies with their own (smaller) caps; this is the backstop
                sub = web.Application(client_max_size=1024 ** 2, middlewares=[_never_500])
                sub.add_routes(routes)
                app.add_subapp(f"/inbound/{name}/", sub)
        self.http = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.http.setup()
        site = web.TCPSite(self.http, self.config.http.host, self.config.http.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.config.http.host}:{port}"

    async def _start_channels(self) -> None:
        for name, chrt in self.channels.items():
            ccfg = self.config.channels[name]
            cls = type(chrt.adapter)
            if ccfg.sandbox:
                creds = channel_credentials(name, ccfg) or cls.sandbox_credentials()
                deliver_to = f"{self.base_url}/inbound/{name}" if cls.capabilities.booking_delivery == "push" else None
                sandbox = cls.make_sandbox(sandbox_catalog(self.mappings, name), creds, deliver_to)
                endpoint = await sandbox.start("127.0.0.1", 0)
                chrt.sandbox = sandbox
                log.info("sandbox started", channel=name, url=endpoint)
            else:
                creds = channel_credentials(name, ccfg)
                endpoint = ccfg.endpoint
                if not endpoint:
                    raise RuntimeError(f"channel {name} has no endpoint in config.yaml (or set sandbox: true)")
            chrt.adapter.settings.endpoint = endpoint
            chrt.adapter.settings.credentials.update(creds)
            await self.synclog.set_status(name, breaker=chrt.breaker.state)

    async def _reprocess_received(self) -> None:
        """Messages stored just before a crash (left ``received``) are read and applied now,
        or failed with the reason. Pushed ones are read by their adapter (``read_stored``);
        pulled ones are left to the next pull (the OTA offers them until acknowledged, and the
        same bytes find the same inbox row)."""
        from sqlalchemy import select

        from channelmgr.ledger import models as m

        where = [m.inbox.c.status == "received"]
        if self.rt.db.dialect == "postgresql":  # other daemons may be handling theirs right now
            from datetime import datetime, timedelta, timezone

            from channelmgr.ops import STUCK_SECONDS

            where.append(m.inbox.c.received_at < datetime.now(timezone.utc) - timedelta(seconds=STUCK_SECONDS))

        async def q(conn):
            return (await conn.execute(select(m.inbox.c.id, m.inbox.c.channel, m.inbox.c.kind, m.inbox.c.body_ct)
                                       .where(*where).order_by(m.inbox.c.id))).all()

        rows = await self.rt.db.read(q)
        done = 0
        for row in rows:
            chrt = self.channels.get(row.channel)
            reader = getattr(chrt.adapter, "read_stored", None) if chrt else None
            if reader is None:
                continue
            try:
                raw = self.rt.ledger.cipher.decrypt_bytes(row.body_ct) or b""
                rev = await asyncio.to_thread(reader, raw, row.kind)
            except Exception as e:
                why = str(e) if e.__class__.__name__ == "ParseError" else f"{e.__class__.__name__}: {e}"
                await self.receiver.fail_stored(row.id, f"{row.channel} message re-read at start-up: {why}")
                continue
            try:
                await self.receiver.apply(row.id, rev)
                done += 1
            except Exception as e:  # apply has marked it failed with the reason
                log.warning("a stored message could not be applied at start-up", inbox_id=row.id,
                            channel=row.channel, error=f"{e.__class__.__name__}: {e}"[:300])
        if rows:
            log.info("messages left received by a previous run re-processed", found=len(rows), applied=done)

    async def _release_previous_claims(self) -> None:
        """SQLite serves one daemon: pushes claimed by a previous (crashed) run go back at once.
        On PostgreSQL other daemons may be alive; their claims expire with their leases."""
        if self.rt.db.dialect != "sqlite":
            return
        from channelmgr.sync.push import release_claims

        async def tx(conn):
            return await release_claims(conn, m.outbox.c.status == "claimed")

        n = await self.rt.db.write(tx)
        if n:
            log.info("pushes claimed by the previous run released", rows=n)

    def _start_workers(self) -> None:
        s = self._push_settings or PushSettings(
            lease_seconds=self.config.sync.claim_lease_seconds, max_attempts=self.config.sync.max_attempts,
            horizon_days=self.config.sync.horizon_days, flush_interval=self.config.sync.flush_interval_seconds,
            coalesce_seconds=self.config.sync.coalesce_seconds,
            coalesce_bulk_seconds=self.config.sync.coalesce_bulk_seconds,
            coalesce_max_seconds=self.config.sync.coalesce_max_seconds)
        snapshots = self.snapshots = SharedSnapshots(self.rt.ledger)  # one read for the channels pushing a property
        for name, chrt in self.channels.items():
            w = PushWorker(chrt, self.rt.ledger, lambda: self.mappings, self.synclog, s,
                           worker_id=f"{self.run_id}/{name}", snapshots=snapshots)  # names this process
            self.workers[name] = w
            self.worker_tasks.append(asyncio.create_task(self._supervise(w.run, f"push-{name}"), name=f"push-{name}"))

    async def _supervise(self, run: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run a loop that must not stay dead: after an unexpected error (the database gone
        for a moment, say) log it and start it again, backing off up to 30 s."""
        delay = 0.5
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("background task failed; restarting it", task=what, error=f"{e.__class__.__name__}: {e}",
                          restart_in_s=delay)
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran fine for a while: this is a new failure
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def _guard(self, coro, what: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("background task died", task=what, error=f"{e.__class__.__name__}: {e}")

    def _at_stop_quietly(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """A job that the scheduler's shutdown cancels while it runs ends quietly (APScheduler
        logs a cancelled job as an error, in plain text among the JSON lines)."""
        @functools.wraps(fn)
        async def job(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                if self._stopped.is_set():
                    return None
                raise

        return job

    def _start_scheduler(self) -> None:
        q = self._at_stop_quietly
        sch = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                            "misfire_grace_time": 30})
        cfg = self.config
        # coroutines run on the event loop; a plain function would run in a thread
        sch.add_job(q(self._flush), "interval", seconds=cfg.sync.flush_interval_seconds, id="flush")
        for name, chrt in self.channels.items():
            if chrt.adapter.capabilities.booking_delivery == "pull":
                sch.add_job(q(self.pull), "interval", args=[name], seconds=cfg.channels[name].pull_interval_seconds,
                            id=f"pull:{name}", next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
        hh, mm = (int(x) for x in cfg.sync.nightly_full_sync_at.split(":"))
        from tzlocal import get_localzone

        sch.add_job(q(self.full_sync), "cron", hour=hh, minute=mm, id="full-sync", timezone=get_localzone())
        sch.add_job(q(self.watchdog), "interval", seconds=cfg.sync.watchdog_interval_seconds, id="watchdog")
        # issue 12: the desk reads new bookings (requests, flags, ack deadlines), and checks overbookings daily
        sch.add_job(q(self.desk_scan), "interval", seconds=cfg.desk.scan_interval_seconds, id="desk-scan",
                    next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
        # issue 13: what a start, a bulk push or a reload freed goes back to the system
        # (milliseconds a minute); else the daemon stays at the high-water mark of its start
        # (the first a few seconds in: a start's first pushes and look-ups come after its reload)
        sch.add_job(q(self.give_back_memory), "interval", seconds=60, id="heap",
                    next_run_time=datetime.now(timezone.utc) + timedelta(seconds=10))
        oh, om = (int(x) for x in cfg.desk.overbooking_check_at.split(":"))
        sch.add_job(q(self.overbooking_check), "cron", hour=oh, minute=om, id="overbooking-check",
                    timezone=get_localzone())
        if cfg.retention.older_than_days is not None:  # issue 13: the daily prune (channelmgr.retention)
            ph, pm_ = (int(x) for x in cfg.retention.prune_at.split(":"))
            sch.add_job(q(self.prune), "cron", hour=ph, minute=pm_, id="prune", timezone=get_localzone())
        if cfg.demo.synthetic_guests and any(c.sandbox for c in self.channels.values()):
            from channelmgr.demo import SyntheticGuests

            self.demo = SyntheticGuests(self, seed=cfg.demo.seed)
            if cfg.demo.bookings_per_minute > 0:
                sch.add_job(q(self.demo.tick), "interval", seconds=60.0 / cfg.demo.bookings_per_minute, id="demo",
                            next_run_time=datetime.now(timezone.utc) + timedelta(seconds=3))
            asyncio.get_running_loop().create_task(self._guard(self.demo.seed_ledger(), "demo-seed"))
        sch.start()
        self.scheduler = sch
        from channelmgr.clockguard import ClockGuard

        self.clock_guard = ClockGuard(self._clock_stepped_back)
        self._clock_task = asyncio.get_running_loop().create_task(self.clock_guard.run(), name="clock-guard")

    def _clock_stepped_back(self, seconds: float) -> None:
        """The wall clock went back: APScheduler's interval jobs (pulls, flush, watchdog, the
        desk scan) were planned on the later time and would wait for it; plan them for now.
        Cron jobs (the nightly full sync, the daily checks) keep their next wall-clock time."""
        from apscheduler.triggers.interval import IntervalTrigger

        if self.scheduler is None or self._stopped.is_set():
            return
        now = datetime.now(timezone.utc)
        for job in self.scheduler.get_jobs():
            if isinstance(job.trigger, IntervalTrigger):
                job.modify(next_run_time=now)
        self.wake_all()

    async def _start_reloader(self) -> None:
        try:
            from channelmgr.mapping.reload import MappingReloader
        except ImportError:  # pragma: no cover - reload lands with the mappings work
            return
        self.reloader = MappingReloader(self.rt, on_change=self._mappings_changed)
        self._watch_task = asyncio.create_task(self._guard(self.reloader.watch(), "mapping-watch"), name="watch")
        if self._reload_pending:
            reason, self._reload_pending = self._reload_pending, None
            await self.reloader.reload(reason)

    def _mappings_changed(self, ms: MappingSet) -> None:
        self.mappings = ms
        for name, chrt in self.channels.items():
            if chrt.sandbox is not None:
                chrt.sandbox.catalog = sandbox_catalog(ms, name)
        self.wake_all()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: self._on_stop_signal(s.name))
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))

    def _on_stop_signal(self, name: str) -> None:
        if not self._ready:  # half started: stopping now would leave what start() opens next running
            self._stop_requested = name
            return
        asyncio.ensure_future(self.stop(reason=name))

    # ---- jobs ---------------------------------------------------------------------
    async def _flush(self) -> None:
        self.wake_all()

    def wake_all(self, *_: Any) -> None:
        for c in self.channels.values():
            c.wakeup.set()

    async def pull(self, name: str) -> int:
        """Fetch new booking revisions of a pull channel, commit them, then acknowledge."""
        chrt = self.channels[name]
        structlog.contextvars.bind_contextvars(channel=name)
        try:
            deliveries = await chrt.adapter.pull_bookings()
        except Exception as e:
            log.warning("pull failed; will try again", channel=name, error=str(e))
            await self.synclog.set_status(name, error=f"pull: {e}")
            return 0
        finally:
            structlog.contextvars.unbind_contextvars("channel")
        if not deliveries:
            return 0
        accepted = await self.receiver.ingest(name, deliveries)
        if accepted:
            try:
                await chrt.adapter.acknowledge(accepted)
                await self._guard(self.desk.record_acks(name, accepted), "desk-acks")
            except Exception as e:  # committed but not acknowledged: the OTA re-sends, we answer duplicate
                log.warning("acknowledge failed; the OTA will send them again", channel=name, error=str(e),
                            bookings=len(accepted))
        return len(accepted)

    async def full_sync(self) -> int:
        """Every channel re-sends every property over its horizon (one 'full' row each)."""
        n = 0

        async def tx(conn):
            nonlocal n
            props = (await conn.execute(select(m.properties.c.id, m.properties.c.code).where(
                m.properties.c.active.is_(True)))).all()
            for pid, code in props:
                chans = [c for c in self.channels if self.mappings and self.mappings.get(code)
                         and self.mappings.get(code).channel(c)]
                if chans:
                    n += await self.rt.ledger.enqueue(conn, pid, chans, [("full", None, None, None)],
                                                      f"full-sync-{self.run_id}")

        await self.rt.db.write(tx)
        log.info("nightly full sync queued", rows=n)
        self.wake_all()
        return n

    async def prune(self) -> None:
        """Retention (issue 13): settled outbox rows and old sync-log bodies, daily."""
        from channelmgr.retention import prune

        r = self.config.retention
        try:
            res = await prune(self.rt.db, timedelta(days=r.older_than_days or 90),
                              journal_older_than=timedelta(days=r.journal_days) if r.journal_days else None)
            log.info("pruned", outbox_rows=res.outbox_deleted, sync_log_bodies=res.sync_log_bodies_cleared,
                     journal_rows=res.journal_deleted, cutoff=res.cutoff.isoformat())
        except Exception as e:  # tomorrow again
            log.error("prune failed", error=f"{e.__class__.__name__}: {e}")

    async def watchdog(self) -> None:
        sd_notify("WATCHDOG=1")
        for w in self.workers.values():
            await w.release(stale_only=True)
        try:
            from channelmgr.sync.drift import check_drift
        except ImportError:
            return
        # issue 13: each channel's read-backs go out spread over most of the interval, at
        # most sync.readbacks_per_second, one at a time (a burst of every property was a
        # core at 10,000); a round still running when the next is due is left to finish
        s = self.config.sync
        for name, chrt in self.channels.items():
            if chrt.adapter.capabilities.readback:
                t = self._drift_tasks.get(name)
                if t is None or t.done():
                    self._drift_tasks[name] = asyncio.create_task(self._guard(
                        check_drift(self, name, spread_over=0.8 * s.watchdog_interval_seconds,
                                    per_second=s.readbacks_per_second), f"drift-{name}"), name=f"drift-{name}")

    async def give_back_memory(self) -> None:
        await asyncio.to_thread(heap.give_back)

    async def desk_scan(self) -> dict[str, int] | None:
        try:
            return await self.desk.scan()
        except Exception as e:  # the next run tries again; bookings are never held up by it
            log.warning("desk scan failed; will try again", error=f"{e.__class__.__name__}: {e}")
            return None

    async def overbooking_check(self) -> list[dict[str, Any]]:
        rows = await self.desk.overbooking.check()
        for p in rows:
            for n in p["overbooked"]:
                log.warning("overbooked night ahead", property=p["property"], room_type=n["room_type"],
                            night=n["night"], over=n["over"])
        return rows

    async def reload(self, reason: str) -> Any:
        if self.reloader is None:  # still starting: the reloader takes it up once it runs
            self._reload_pending = reason
            return None
        return await self.reloader.reload(reason)

    # ---- http ---------------------------------------------------------------------
    async def _h_health(self, request: web.Request) -> web.Response:
        out = {"status": "ok", "run_id": self.run_id,
               "uptime_seconds": round(time.monotonic() - self.started_at, 1),
               "mappings": self.mappings.fingerprint if self.mappings else None,
               "channels": {n: {"breaker": c.breaker.state,
                                "push_calls": self.workers[n].pushed_calls if n in self.workers else 0,
                                "push_items": self.workers[n].pushed_items if n in self.workers else 0}
                            for n, c in self.channels.items()}}
        if any(c.breaker.state == "open" for c in self.channels.values()):
            out["status"] = "degraded"
        return web.json_response(out)

    async def _h_status(self, request: web.Request) -> web.Response:
        from channelmgr.ops import status

        disabled = [n for n, c in self.config.channels.items() if not c.enabled]
        out = await status(self.rt.db, list(self.channels), disabled)
        # inbound calls refused before storing (not the OTA's, unreadable, too large, replayed)
        out["inbound_refused"] = {n: c.adapter.http.refused.snapshot() for n, c in self.channels.items()
                                  if getattr(getattr(c.adapter, "http", None), "refused", None) is not None}
        return web.json_response(out, dumps=_dumps)

    # ---- stop ---------------------------------------------------------------------
    async def stop(self, reason: str = "stop") -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        sd_notify("STOPPING=1")
        log.info("stopping", reason=reason)
        grace = self.config.sync.shutdown_grace_seconds
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        if self._watch_task:
            self._watch_task.cancel()
        if self._clock_task:
            self._clock_task.cancel()
        await asyncio.gather(*(cancel_and_wait(t) for t in self._drift_tasks.values()))
        # every step bounded: one that hangs (a handler stuck behind the database, a driver's
        # close) is logged and left, and the stop goes on, so SIGTERM always ends the process
        await bounded(asyncio.gather(*(w.stop(grace) for w in self.workers.values()), return_exceptions=True),
                      grace + 10, "push workers")
        await bounded(asyncio.gather(*(cancel_and_wait(t) for t in self.worker_tasks)), 10, "worker tasks")
        if self.snapshots is not None:  # a read the stopped pushes had asked for: not left holding a connection
            await bounded(self.snapshots.close(), 10, "ledger reads")
        if self.http:
            await bounded(self.http.cleanup(), 10, "http server")
        for c in self.channels.values():
            await bounded(c.adapter.close(), 5, f"{c.name} adapter")
            if c.sandbox is not None:
                await bounded(c.sandbox.stop(), 10, f"{c.name} sandbox")
        if self.process:
            await bounded(self.process.stop(), 10, "process record")
        if self.synclog:
            await bounded(self.synclog.stop(), 15, "sync log")
        if self.rt:
            await bounded(self.rt.close(), 15, "database")
        self._done.set()
        log.info("stopped", reason=reason)

    async def serve_forever(self) -> None:
        await self.start()
        await self._done.wait()


@web.middleware
async def _never_500(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """An OTA's call that fails in a way its handler did not foresee is answered 503 (deliver
    again later), never 500 with a traceback; the handlers mark stored messages failed."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("inbound call failed", path=request.path)
        return web.Response(status=503, text="system error, deliver again later")


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str, ensure_ascii=False)


async def run(config_path: str | None) -> int:
    from channelmgr.logsetup import configure

    cfg = load_config(config_path)
    configure(cfg.log.format, cfg.log.level)
    d = Daemon(cfg)
    from channelmgr.terminal import attach

    attach(d)  # on a terminal, the start-up summary and the line per channel read from d
    try:
        await d.serve_forever()
    except BaseException:
        await d.stop("error")
        raise
    finally:
        await end_leftover_tasks()  # so asyncio.run's own cancel-and-wait cannot hang the exit
    return 0
