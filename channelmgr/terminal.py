"""What `channelmgr run` shows a person at a terminal.

On a service (stdout not a terminal) every log event is a JSON line, and stays so. On a
terminal that is far too much to read (every call to an OTA is a line), so this view shows:

- a start-up summary: the database, the mappings in force, each channel with its sandbox
  or endpoint and how bookings arrive, and the daemon's HTTP address;
- then every few seconds one compact line per channel: items pushed, bookings received,
  pushes waiting, failed calls since the line before (and the circuit breaker when open);
- warnings and errors in full, in colour; other events in one short line each.

The per-call ``ota call`` lines are left out at level info; they are all in `channelmgr
logs`, and shown here too with ``--log-level debug``. Plain ANSI colour, off when
``NO_COLOR`` is set or ``TERM=dumb``.

Hooks: logsetup.configure() asks :func:`view_for` for the renderer when its stream is a
terminal; daemon.run() calls :func:`attach` with the daemon, which the summary and the
channel lines read from.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import datetime
from typing import Any, TextIO

import structlog

TICK_SECONDS = 5.0
HIDDEN = {"run_id", "timestamp", "level", "event"}
# what the summary already says, once a daemon is attached
IN_SUMMARY = {"sandbox started", "channelmgr is running"}

_RESET, _BOLD, _DIM = "\033[0m", "\033[1m", "\033[2m"
_RED, _GREEN, _YELLOW, _CYAN = "\033[31m", "\033[32m", "\033[33m", "\033[36m"

_view: TerminalView | None = None


def view_for(stream: TextIO, level: str) -> TerminalView:
    """The terminal view for this process (logsetup.configure makes it the renderer)."""
    global _view
    _view = TerminalView(stream, level)
    return _view


def attach(daemon: Any) -> None:
    """Give the terminal view (if the log goes to a terminal) the daemon it describes."""
    if _view is not None:
        _view.daemon = daemon


class TerminalView:
    def __init__(self, stream: TextIO, level: str, tick_seconds: float | None = None):
        self.stream = stream
        self.debug = level.lower() == "debug"
        self.colour = not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.tick_seconds = tick_seconds or TICK_SECONDS
        self.daemon: Any = None
        self._ticker: asyncio.Task | None = None
        self._marks: dict[str, int] | None = None
        self._pushed: dict[str, int] = {}

    # ---- the structlog renderer -------------------------------------------------------
    def __call__(self, _logger, method: str, ev: dict[str, Any]) -> str:
        event = str(ev.get("event", ""))
        level = str(ev.get("level", method))
        if event == "ota call" and not self.debug and level in ("debug", "info"):
            raise structlog.DropEvent
        if self.daemon is not None:
            if event == "channelmgr is running":
                self._start_ticker()
                return self.summary(ev)
            if event in IN_SUMMARY:
                raise structlog.DropEvent
            if event == "stopping" and self._ticker is not None:
                self._ticker.cancel()
        return self.line(ev, full=level in ("warning", "error", "critical", "exception"))

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.colour else text

    def _time(self, ev: dict[str, Any] | None = None) -> str:
        ts = (ev or {}).get("timestamp")
        try:
            t = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).astimezone() if ts else datetime.now()
        except ValueError:
            t = datetime.now()
        return self._c(_DIM, t.strftime("%H:%M:%S"))

    def line(self, ev: dict[str, Any], full: bool) -> str:
        level = str(ev.get("level", "info"))
        parts = []
        for k, v in ev.items():
            if k in HIDDEN or k == "exception":
                continue
            text = v if isinstance(v, (str, int, float)) else repr(v)
            text = str(text)
            if not full and len(text) > 60:
                text = text[:57] + "..."
            parts.append(f"{k}={text}")
        event = str(ev.get("event", ""))
        if level in ("error", "critical", "exception"):
            event, colour = f"error: {event}", _RED + _BOLD
        elif level == "warning":
            event, colour = f"warning: {event}", _YELLOW + _BOLD
        else:
            colour = ""
        rest = f"  {' '.join(parts)}" if parts else ""
        if not full:  # one screen line: an info line never wraps
            room = shutil.get_terminal_size((120, 24)).columns - 10 - len(event)
            if len(rest) > room:
                rest = rest[: max(0, room - 3)] + "..."
        out = f"{self._time(ev)}  {self._c(colour, event) if colour else event}{rest}"
        if full and ev.get("exception"):
            out += "\n" + str(ev["exception"])
        return out

    # ---- the summary and the line per channel ------------------------------------------
    def summary(self, ev: dict[str, Any]) -> str:
        from channelmgr import __version__
        from channelmgr.ledger.db import redact_url

        d = self.daemon
        cfg = d.config
        ms = d.mappings
        rows = [self._c(_BOLD + _GREEN, f"channelmgr {__version__} is running") + self._c(_DIM, f"  (run {d.run_id})")]

        def row(label: str, text: str) -> None:
            rows.append(f"  {self._c(_BOLD, f'{label:<9}')} {text}")

        row("database", redact_url(cfg.database_url()))
        hotels = ", ".join(sorted(ms.properties)) if ms else "-"
        row("mappings", f"{cfg.resolve(cfg.mappings_dir)}  (version {ms.fingerprint if ms else '-'}; "
                        f"hotels: {hotels})")
        row("http", f"{d.base_url}  (OTAs push to /inbound/<ota>/; /health, /api/status)")
        first = True
        for name in sorted(cfg.channels):
            c = d.channels.get(name)
            if c is None:
                text = self._c(_DIM, "disabled")
            else:
                where = "sandbox " if c.sandbox is not None else ""
                caps = c.adapter.capabilities
                if caps.booking_delivery == "pull":
                    how = f"bookings pulled every {cfg.channels[name].pull_interval_seconds:g} s"
                else:
                    how = f"bookings pushed to {d.base_url}/inbound/{name}"
                text = f"{where}{c.adapter.settings.endpoint}  ({how})"
            label = f"{'channels' if first else '':<9}"
            rows.append(f"  {self._c(_BOLD, label)} {self._c(_CYAN, f'{name:<8}')} {text}")
            first = False
        rows.append(self._c(_DIM, f"  every {self.tick_seconds:g} s one line per OTA: items pushed, bookings "
                                  "received, pushes waiting, failed calls since the line before; every call is "
                                  "in `channelmgr logs`. Ctrl-C stops."))
        return "\n".join(rows)

    def _start_ticker(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._ticker is None:
            self._ticker = loop.create_task(self._tick_loop(), name="terminal-lines")

    async def _tick_loop(self) -> None:
        from channelmgr.ops import activity

        d = self.daemon
        try:
            self._marks = (await activity(d.rt.db))["marks"]
            self._pushed = {n: w.pushed_items for n, w in d.workers.items()}
        except Exception:
            self._marks = None
        while not d._stopped.is_set():
            await asyncio.sleep(self.tick_seconds)
            if d._stopped.is_set():
                return
            try:
                self.write(await self.tick())
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the view must never take the daemon down
                self.write(f"{self._time()}  {self._c(_YELLOW, 'could not read the figures')}: {e}")

    async def tick(self) -> str:
        from channelmgr.ops import activity

        d = self.daemon
        act = await activity(d.rt.db, self._marks)
        self._marks = act["marks"]
        lines = []
        for name in sorted(d.channels):
            w = d.workers.get(name)
            now = w.pushed_items if w else 0
            pushed, self._pushed[name] = now - self._pushed.get(name, 0), now
            bookings = act["bookings"].get(name, 0)
            waiting = act["waiting"].get(name, 0)
            errors = act["errors"].get(name, 0)
            breaker = d.channels[name].breaker.state
            err = f"errors {errors:>3}"
            text = (f"{self._time()}  {self._c(_CYAN, f'{name:<8}')} pushed {pushed:>5}  "
                    f"bookings {bookings:>3}  "
                    f"{self._c(_YELLOW, f'waiting {waiting:>5}') if waiting else f'waiting {waiting:>5}'}  "
                    f"{self._c(_RED, err) if errors else err}")
            if breaker != "closed":
                text += "  " + self._c(_RED + _BOLD, f"breaker {breaker}")
            lines.append(text)
        return "\n".join(lines)

    def write(self, text: str) -> None:
        if text:
            print(text, file=self.stream, flush=True)
