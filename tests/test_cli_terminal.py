"""`channelmgr run` as a person sees it on a terminal, and as a service writes it (issue 9).

The real daemon with the shipped config.yaml (four loopback sandboxes, synthetic guests) in a
temporary folder, once under a pseudo-terminal and once with its output in a pipe.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("booking", "ctrip", "fliggy", "meituan")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    (tmp_path / "mappings").mkdir()
    for f in (ROOT / "mappings").glob("*.yaml"):
        (tmp_path / "mappings" / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def _env() -> dict[str, str]:
    e = dict(os.environ, CHANNELMGR__HTTP__PORT="0", COLUMNS="150", LINES="40", TERM="xterm")
    for k in ("CHANNELMGR_DATABASE_URL", "NO_COLOR"):
        e.pop(k, None)
    return e


def _read(fd: int, seconds: float, out: bytearray, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal's other side closed: the daemon is gone
                return
            if not chunk:
                return
            out += chunk
        elif proc is not None and proc.poll() is not None:
            return


def run_on_a_terminal(cwd: Path, seconds: float, *args: str) -> tuple[str, int]:
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "channelmgr", "run", *args], cwd=cwd, env=_env(),
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = bytearray()
    try:
        # ``seconds`` from the moment it says it is running (a loaded machine starts slower)
        started = time.monotonic()
        while b"is running" not in out and time.monotonic() - started < 120 and proc.poll() is None:
            _read(master, 0.5, out)
        _read(master, seconds, out)
        proc.send_signal(signal.SIGINT)
        _read(master, 30, out, proc)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return ANSI.sub("", out.decode("utf-8", errors="replace")).replace("\r\n", "\n"), rc


@pytest.mark.slow
def test_on_a_terminal_run_shows_a_summary_and_a_line_per_channel_not_every_call(shipped):
    text, rc = run_on_a_terminal(shipped, 13)
    assert rc == 0, text
    lines = text.splitlines()
    assert "ota call" not in text
    assert any("channelmgr" in line and "is running" in line for line in lines), text
    assert any(line.split()[:1] == ["database"] and "channelmgr.db" in line for line in lines), text
    assert any(line.split()[:1] == ["mappings"] and str(shipped / "mappings") in line and "SHA-BUND" in line
               for line in lines), text
    assert any(line.split()[:1] == ["http"] and "http://127.0.0.1:" in line for line in lines), text
    for name in CHANNELS:
        assert re.search(rf"^\s+(channels\s+)?{name}\s+sandbox http://127\.0\.0\.1:\d+", text, re.M), (name, text)
        # the line per channel, every 5 s: at least two in the 13 s after start-up
        ticks = re.findall(rf"^\d\d:\d\d:\d\d\s+{name}\s+pushed\s+\d+\s+bookings\s+\d+\s+waiting\s+\d+\s+errors\s+\d+",
                           text, re.M)
        assert len(ticks) >= 2, (name, text)
    # the first line of each channel counts the start-up push of the demo's 90 nights
    first = {name: int(re.search(rf"^\d\d:\d\d:\d\d\s+{name}\s+pushed\s+(\d+)", text, re.M).group(1))
             for name in CHANNELS}
    assert sum(first.values()) > 0, text
    # an ordinary line never wraps: none is wider than the terminal (COLUMNS=150)
    timed = [line for line in lines if re.match(r"\d\d:\d\d:\d\d  ", line)
             and not re.match(r"\S+  (warning|error):", line)]
    assert timed and max(len(line) for line in timed) <= 150, text
    assert "stopped" in text


@pytest.mark.slow
def test_on_a_terminal_debug_shows_every_call(shipped):
    text, rc = run_on_a_terminal(shipped, 9, "--log-level", "debug")
    assert rc == 0, text
    assert "is running" in text
    assert re.search(r"^\d\d:\d\d:\d\d\s+ota call\s+channel=\w+ .*operation=", text, re.M), text


@pytest.mark.slow
def test_as_a_service_run_writes_json_lines_as_before(shipped):
    proc = subprocess.Popen([sys.executable, "-m", "channelmgr", "run"], cwd=shipped, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(9)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.decode().splitlines()]  # every line is JSON
    calls = [e for e in events if e["event"] == "ota call"]
    assert calls, events
    assert {"channel", "direction", "operation", "items", "result", "duration_ms", "attempt", "run_id", "level",
            "timestamp"} <= set(calls[0])
    running = next(e for e in events if e["event"] == "channelmgr is running")
    assert set(running["channels"]) == set(CHANNELS)
    assert [e["channel"] for e in events if e["event"] == "sandbox started"] == list(CHANNELS)
    assert not any("pushed" in line and "waiting" in line for line in out.decode().splitlines()
                   if not line.startswith("{"))


def test_the_terminal_view_gives_warnings_in_full_and_keeps_other_lines_short(monkeypatch):
    import io

    import structlog

    from channelmgr.terminal import TerminalView

    monkeypatch.setenv("COLUMNS", "100")
    view = TerminalView(io.StringIO(), "info")
    reason = "the OTA answered 503 " + "x" * 300
    warning = view(None, "warning", {"event": "pull failed; will try again", "level": "warning",
                                     "channel": "fliggy", "error": reason, "run_id": "r1"})
    assert "warning: pull failed; will try again" in warning and reason in warning and "run_id" not in warning
    info = view(None, "info", {"event": "booking applied", "level": "info", "ota_booking_id": "9" * 200})
    assert re.match(r"\d\d:\d\d:\d\d  booking applied", ANSI.sub("", info)) and len(ANSI.sub("", info)) <= 100
    call = {"event": "ota call", "level": "info", "channel": "ctrip", "operation": "avail_notif", "items": 3}
    with pytest.raises(structlog.DropEvent):
        view(None, "info", dict(call))
    assert "operation=avail_notif" in TerminalView(io.StringIO(), "debug")(None, "info", dict(call))
    assert "warning: ota call" in view(None, "warning", dict(call, level="warning", result="rate_limited"))
