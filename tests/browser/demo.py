"""The real demo, `channelmgr run` as a newcomer starts it, as a subprocess for end-to-end tests.

A temporary working folder gets the shipped config.yaml and mappings/; the daemon runs on
the embedded default SQLite there (or on a PostgreSQL database given as
CHANNELMGR_DATABASE_URL, the documented override), on a free port
(CHANNELMGR__HTTP__PORT=0), with JSON log lines on stdout. The admin password the demo
prints once on stderr is read from there. Plain urllib talks to it (the API, /metrics, the
sandboxes' control API), so tests that need no browser need nothing else.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("booking", "ctrip", "fliggy", "meituan")
PASSWORD_RE = re.compile(r"log in as admin with the password (\S+)")


class Answer:
    def __init__(self, status: int, body: bytes, headers):
        self.status, self.body, self.headers = status, body, headers

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]}>"


class Client:
    """A tiny HTTP client with its own cookie jar (one per logged-in user); redirects not followed."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **kw):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, timeout: float = 30) -> Answer:
        url = path if path.startswith("http") else self.base + path
        h = {**self.headers, **(headers or {})}
        data = None
        if form is not None:
            from urllib.parse import urlencode

            data = urlencode(form).encode()
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return Answer(r.status, r.read(), r.headers)
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.read(), e.headers)

    def get(self, path: str, **kw) -> Answer:
        return self.request("GET", path, **kw)

    def login(self, name: str, password: str) -> dict:
        a = self.request("POST", "/api/v1/login", {"name": name, "password": password})
        assert a.status == 200, a
        out = a.json()
        self.headers["X-CSRF-Token"] = out["csrf_token"]
        return out


class Demo:
    def __init__(self, workdir: Path, db_url: str | None = None, env: dict[str, str] | None = None):
        self.dir = workdir
        self.db_url = db_url
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.base: str | None = None
        self.sandboxes: dict[str, str] = {}
        self.admin_password: str | None = None
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads: list[threading.Thread] = []

    # ---- environment ------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELMGR")}
        e.update({"CHANNELMGR__HTTP__PORT": "0", "CHANNELMGR__LOG__FORMAT": "json", "PYTHONUNBUFFERED": "1"})
        if self.db_url:
            e["CHANNELMGR_DATABASE_URL"] = self.db_url
        e.update(self.extra_env)
        return e

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`channelmgr ARGS` in the demo's folder, against its database (stdin not a terminal)."""
        return subprocess.run([sys.executable, "-m", "channelmgr", *args], cwd=self.dir, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def add_user(self, name: str, role: str) -> str:
        """`channelmgr users add NAME --role R`; the password it made up and printed once."""
        r = self.cli("users", "add", name, "--role", role)
        assert r.returncode == 0, r.stderr
        found = re.search(r"^password: (\S+)$", r.stdout, re.M)
        assert found, r.stdout
        return found.group(1)

    def token(self, name: str) -> str:
        r = self.cli("users", "token", name)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[0]

    # ---- running ------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> "Demo":
        shutil.copy(ROOT / "config.yaml", self.dir / "config.yaml")
        shutil.copytree(ROOT / "mappings", self.dir / "mappings", dirs_exist_ok=True)
        if self.db_url and not self.db_url.startswith("sqlite"):
            r = self.cli("db", "upgrade")
            assert r.returncode == 0, r.stderr
        self.proc = subprocess.Popen([sys.executable, "-m", "channelmgr", "run"], cwd=self.dir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            t = threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        while not (self.base and len(self.sandboxes) == len(CHANNELS) and self.admin_password):
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo did not start within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)
        while True:
            try:
                if Client(self.base).get("/health", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/health did not answer 200 within {timeout} s:\n{self.tail()}")
            time.sleep(0.2)
        return self

    def _read(self, stream, sink: list[str]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sink.append(line)
            if sink is self.err:
                found = PASSWORD_RE.search(line)
                if found:
                    self.admin_password = found.group(1)
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "sandbox started":
                self.sandboxes[ev["channel"]] = ev["url"]
            elif ev.get("event") == "channelmgr is running":
                self.base = ev["http"]

    def tail(self, n: int = 30) -> str:
        return "\n".join(["-- stdout:"] + self.out[-n:] + ["-- stderr:"] + self.err[-n:])

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for t in self._threads:
            t.join(5)
        return self.proc.returncode

    # ---- talking to it --------------------------------------------------------------------
    def client(self) -> Client:
        assert self.base
        return Client(self.base)

    def admin(self) -> Client:
        c = self.client()
        c.login("admin", self.admin_password)
        return c

    def status(self) -> dict:
        return self.admin_client().get("/api/v1/status").json()

    def admin_client(self) -> Client:
        if not hasattr(self, "_admin"):
            self._admin = self.admin()
        return self._admin

    def wait_settled(self, timeout: float = 300) -> dict:
        """Until every channel has succeeded once and no push waits (the first full sync done)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            chans = {c["channel"]: c for c in st["channels"]}
            if all(chans.get(ch, {}).get("last_success_at") and chans[ch]["outbox_depth"] == 0 for ch in CHANNELS):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo did not settle within {timeout} s: {st}")
            time.sleep(1)

    # ---- the sandboxes ----------------------------------------------------------------------
    def mapping(self):
        from channelmgr.mapping import load_mappings

        return load_mappings(self.dir / "mappings").get("SHA-BUND")

    def codes(self, channel: str, room_type: str, rate_plan: str | None = None) -> tuple[str, str, str | None]:
        ch = self.mapping().channel(channel)
        return ch.hotel_id, ch.rooms[room_type], (ch.rates.get(rate_plan) if rate_plan else None)

    def book(self, channel: str, room_type: str, rate_plan: str, checkin, checkout, guest: dict,
             amount_minor: int = 88800, **extra: Any) -> str:
        """A booking made on that OTA's sandbox (its control API); the OTA id."""
        hotel, room, rate = self.codes(channel, room_type, rate_plan)
        payload = {"hotel": hotel, "room": room, "rate": rate, "checkin": str(checkin), "checkout": str(checkout),
                   "rooms": 1, "guest": guest, "amount_minor": amount_minor, "currency": "CNY", **extra}
        a = Client(self.sandboxes[channel]).request("POST", "/_sandbox/bookings", payload)
        assert a.status == 200, a
        return a.json()["ota_booking_id"]


def chromium_path() -> str | None:
    p = "/usr/bin/chromium"
    return p if os.access(p, os.X_OK) else None
