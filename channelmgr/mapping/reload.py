"""Hot reload of mappings/: a valid edit goes into force by itself, a broken one never does.

The daemon calls ``reload("SIGHUP")`` on SIGHUP and runs ``watch()`` as a task; nothing
here knows the daemon. A reload reads the folder once, checks every file, and then either

- refuses the edit: every problem is logged (file:line:col and the sentence `mappings
  check` prints), ``runtime.mappings`` is not touched, the last good version stays in force;
  besides what `check` finds, an edit whose price rules would hold back prices of the
  ledger under their floor (channelmgr.mapping.floors) over the horizon is refused too;
- or puts it in force: works out with `diff_mappings` exactly which channel cells change
  over the sync horizon, swaps the mappings in one assignment, brings the ledger's catalog
  in line, queues exactly those cells per channel (one journal row each) and records the
  version in the ledger.

Order, and why: the swap comes before anything is queued, so a push worker that picks up
a queued cell always derives it with the new mapping (queued first, a worker could push the
old values and mark the row done). A catalog change (a room type, its physical rooms, a
rate plan or a listing) makes the ledger queue a whole-property 'full' push per channel by
itself; for such a property the cells are not queued again. If the ledger cannot be
written, the swap is undone and the next poll of the folder tries again. A crash between
the swap and the version being recorded loses those pushes until the nightly full sync.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Callable

import structlog

from channelmgr.mapping.diff import (
    MappingDiff,
    diff_mappings,
    floor_check,
    ledger_snapshots,
    today_in,
)
from channelmgr.mapping.loader import (
    CapabilitiesFor,
    check_texts,
    fingerprint_paths,
    load_texts,
    read_texts,
    registry_capabilities,
)
from channelmgr.mapping.model import MappingSet, fingerprint
from channelmgr.yamlfile import Problem, YamlFileError

log = structlog.get_logger("channelmgr.mappings")

MAX_DIFF_DAYS = 730


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    reason: str
    changed: bool = False  # a new version was put in force
    fingerprint: str | None = None  # the version in force afterwards
    problems: tuple[Problem, ...] = ()
    error: str | None = None  # the ledger could not be written (the old version stays)
    cells_changed: int = 0
    cells_enqueued: int = 0
    enqueued: dict[tuple[str, str], int] = field(default_factory=dict)  # (property, channel) -> cells
    full_push: tuple[str, ...] = ()  # properties re-sent in full because their catalog changed
    diff: MappingDiff | None = None


class MappingReloader:
    def __init__(self, runtime: Any, on_change: Callable[[MappingSet], Any] | None = None, *,
                 capabilities_for: CapabilitiesFor | None = None,
                 today_for: Callable[[str], date] = today_in,
                 diff_days: int | None = None, settle_seconds: float = 0.3):
        self.rt = runtime
        self.on_change = on_change
        self.capabilities_for = capabilities_for or registry_capabilities
        self.today_for = today_for
        self.diff_days = min(diff_days or runtime.config.sync.horizon_days, MAX_DIFF_DAYS)
        self.settle_seconds = settle_seconds
        self.folder = runtime.config.resolve(runtime.config.mappings_dir)
        self._lock = asyncio.Lock()
        self._refused: str | None = None  # fingerprint of the last refused folder contents
        self.last: ReloadResult | None = None
        # the watcher's stat cache: path -> ((size, mtime, ctime, inode), sha-256 of the text);
        # a digest, not the text: at 10,000 files the texts were another 85 MB (issue 13)
        self._stat_cache: dict[str, tuple[tuple, bytes]] = {}
        self._scan_sig: str | None = None
        self.files_read = 0
        self.scans = 0  # scans of the folder by watch()

    def enabled(self, channel: str) -> bool:
        """A channel the daemon runs: in config.yaml and not ``enabled: false``."""
        ccfg = self.rt.config.channels.get(channel)
        return ccfg is not None and ccfg.enabled

    def _listed_specs(self, ms: MappingSet) -> list:
        """The catalog as the ledger keeps it: a property is listed only on the channels that
        run, so a disabled channel gets no outbox rows (bookings' fan-out included)."""
        from dataclasses import replace

        return [replace(s, channels=tuple(c for c in s.channels if self.enabled(c))) for s in ms.specs()]

    # ---- reload ---------------------------------------------------------------------
    async def reload(self, reason: str) -> ReloadResult:
        async with self._lock:
            result = await self._reload(reason)
        self.last = result
        return result

    async def _reload(self, reason: str) -> ReloadResult:
        current = self.rt.mappings
        if current is not None:  # the version in force still: known without holding every text
            same = await asyncio.to_thread(fingerprint_paths, [self.folder])
            if same is not None and same == current.fingerprint:
                return ReloadResult(True, reason, fingerprint=same)
        texts, read_problems = await asyncio.to_thread(read_texts, [self.folder])
        fp = fingerprint(texts)
        # the same files as the version in force, or (seen by the watcher) the same edit that
        # was refused last time: nothing to parse (10,000 files are minutes of parsing)
        if not read_problems and texts and current is not None and current.fingerprint == fp:
            return ReloadResult(True, reason, fingerprint=fp)
        if reason == "file change" and fp == self._refused:
            if self.last is not None and not self.last.ok:
                return self.last
            return ReloadResult(False, reason, fingerprint=current.fingerprint if current else None)
        # parsing many files is CPU work: off the event loop, so pushes and bookings go on
        # (only the files whose text changed since the version in force are parsed)
        checked = await asyncio.to_thread(partial(check_texts, texts, self.capabilities_for, unchanged=current))
        problems = sorted(read_problems + checked.problems, key=lambda p: (p.file, p.line, p.col))
        if not texts and not problems:
            problems = [Problem(str(self.folder), 1, 1, "the mappings folder has no mapping files (*.yaml)")]
        if problems:
            self._refused = fingerprint(texts)
            for p in problems:
                log.error("mapping refused; the last good version stays in force", problem=str(p),
                          file=p.file, line=p.line, col=p.col, reason=reason)
            log.error("mapping edit refused", problems=len(problems), reason=reason,
                      in_force=current.fingerprint if current else None)
            return ReloadResult(False, reason, problems=tuple(problems),
                                fingerprint=current.fingerprint if current else None)
        new = checked.mapping_set()
        # the texts are in the new set, compressed: the raw ones (85 MB at 10,000 files, issue
        # 13) are not held through the comparisons and the catalog sync below
        del checked, texts
        self._refused = None
        if current is not None and current.fingerprint == new.fingerprint:
            return ReloadResult(True, reason, fingerprint=new.fingerprint)
        old = current if current is not None else await self._in_force(new)
        started = time.perf_counter()
        ledger = self.rt.ledger
        try:
            if old is None or old.fingerprint == new.fingerprint:
                # nothing in force before (a first start: the catalog sync queues a full push
                # of every new property by itself), or the version in force unchanged
                diff = MappingDiff(self.diff_days)
            else:
                diff = await diff_mappings(old, new, ledger_snapshots(ledger), self.today_for, self.diff_days,
                                           self.capabilities_for)
                # the ledger's prices through the edited price rules: an edit that would hold
                # prices back under their floor is refused like a broken file
                floors = await floor_check(old, new, ledger_snapshots(ledger), self.today_for, self.diff_days,
                                           self.capabilities_for, self.enabled)
                for w in floors.warnings:
                    log.warning("mapping warning", problem=str(w), file=w.file, line=w.line, col=w.col,
                                reason=reason)
                if not floors.ok:
                    self._refused = fp
                    for p in floors.problems:
                        log.error("mapping refused; the last good version stays in force", problem=str(p),
                                  file=p.file, line=p.line, col=p.col, reason=reason)
                    log.error("mapping edit refused", problems=len(floors.problems), reason=reason,
                              in_force=current.fingerprint if current else None)
                    return ReloadResult(False, reason, problems=tuple(floors.problems),
                                        fingerprint=current.fingerprint if current else None)
        except Exception as e:
            log.error("mapping edit could not be compared with the ledger; not put in force",
                      error=f"{e.__class__.__name__}: {e}", reason=reason)
            return ReloadResult(False, reason, fingerprint=current.fingerprint if current else None,
                                error=f"{e.__class__.__name__}: {e}")
        self._swap(new)
        enqueued: dict[tuple[str, str], int] = {}
        full: list[str] = []
        try:
            summary = await ledger.sync_catalog(self._listed_specs(new), actor="mappings",
                                                reason=f"mapping edit ({reason})")
            for pd in diff.properties:
                if pd.catalog_changed and summary.outbox_rows:
                    full.append(pd.property)
                    continue
                if new.get(pd.property) is None:
                    continue
                for cd in pd.channels:
                    if not self.enabled(cd.channel):
                        continue  # a disabled channel queues nothing; enabling it re-sends all
                    caps = self.capabilities_for(cd.channel)
                    horizon = min(self.diff_days, getattr(caps, "horizon_days", self.diff_days))
                    keys = [k for k in cd.push_keys() if (k[3] - pd.start).days < horizon]
                    if not keys:
                        continue
                    n = await ledger.enqueue_cells(
                        pd.property, cd.channel, keys, actor="mappings", reason=f"mapping edit ({reason})",
                        detail={"mapping": new.fingerprint, "previous": old.fingerprint if old else None})
                    enqueued[(pd.property, cd.channel)] = n
            await ledger.record_mapping_version(new.fingerprint, dict(new.files), actor=f"mappings ({reason})")
        except Exception as e:
            self._restore(current, old)
            log.error("mapping edit could not be written to the ledger; the last good version stays in force",
                      error=f"{e.__class__.__name__}: {e}", reason=reason)
            return ReloadResult(False, reason, fingerprint=current.fingerprint if current else None,
                                error=f"{e.__class__.__name__}: {e}", diff=diff)
        result = ReloadResult(True, reason, changed=True, fingerprint=new.fingerprint,
                              cells_changed=diff.cells_changed(), cells_enqueued=sum(enqueued.values()),
                              enqueued=enqueued, full_push=tuple(full), diff=diff)
        log.info("mappings reloaded", reason=reason, mappings=new.fingerprint,
                 previous=old.fingerprint if old else None, cells_changed=result.cells_changed,
                 cells_enqueued=result.cells_enqueued, full_push=list(full),
                 per_channel={f"{p}/{c}": n for (p, c), n in sorted(enqueued.items())},
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return result

    def _swap(self, ms: MappingSet) -> None:
        self.rt.mappings = ms  # one assignment: readers see the old set or the new one, never a mix
        if hasattr(self.rt, "mapping_errors"):
            self.rt.mapping_errors = []
        if self.on_change is not None:
            try:
                self.on_change(ms)
            except Exception as e:  # the daemon's callback must not undo a good reload
                log.error("mapping change callback failed", error=f"{e.__class__.__name__}: {e}")

    def _restore(self, current: MappingSet | None, old: MappingSet | None) -> None:
        self.rt.mappings = current
        if self.on_change is not None and (current or old) is not None:
            try:
                self.on_change(current or old)
            except Exception as e:
                log.error("mapping change callback failed", error=f"{e.__class__.__name__}: {e}")

    async def _in_force(self, new: MappingSet | None = None) -> MappingSet | None:
        """The version the ledger says is in force, when none is loaded (a start, with the
        folder as it is now in ``new``). Issue 13: at a restart with the folder unchanged that
        version is ``new`` itself, and is not parsed again (10,000 files were minutes); when
        some files changed while nothing ran, only those are parsed."""
        try:
            version = await self.rt.ledger.mapping_in_force()
            if not version:
                return None
            if new is not None and version.get("fingerprint") == new.fingerprint:
                return new
            return await asyncio.to_thread(partial(load_texts, dict(version["files"]), self.capabilities_for,
                                                   unchanged=new))
        except (YamlFileError, Exception) as e:
            log.warning("the version in force could not be read; comparing against nothing",
                        error=f"{e.__class__.__name__}: {e}")
            return None

    # ---- watch ----------------------------------------------------------------------
    def _scan(self) -> str:
        """A signature of the folder's mapping file names and contents (an unreadable file
        counts): equal for equal contents, different when any file changed. Not the mapping
        fingerprint (that hashes the texts, which are not kept here); ``reload`` reads the
        folder and compares fingerprints itself.

        Idle cost (issue 13): every file is stat'ed, and only a file whose (size, mtime,
        ctime, inode) changed is read again; with nothing changed nothing is read or hashed
        (reading and hashing 10,000 files every second was a core). A file changed in the
        last two seconds is read again at every scan until it is older, since a second write
        within the file system's timestamp granularity could keep its size and times.
        """
        folder = Path(self.folder)
        if not folder.is_dir():
            self._stat_cache = {}
            texts, problems = read_texts([folder])
            for p in problems:
                texts[p.file] = f"\0unreadable\0{p.message}"
            return fingerprint(texts)
        now = time.time()
        seen: dict[str, tuple] = {}
        changed = False
        cache = self._stat_cache
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            return fingerprint({str(folder): f"\0unreadable\0{e}"})
        for e in entries:
            if not e.name.endswith((".yaml", ".yml")) or e.name.startswith((".", "#", "~")):
                continue
            try:
                if not e.is_file():
                    continue
                st = e.stat()
            except OSError:
                continue  # gone between the listing and the stat: not there
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            old = cache.get(e.path)
            if old is not None and old[0] == key and now - st.st_mtime_ns / 1e9 > 2.0:
                seen[e.path] = old
                continue
            texts, problems = read_texts([e.path])
            self.files_read += 1
            text = texts.get(e.path)
            if text is None:
                text = f"\0unreadable\0{problems[0].message if problems else 'unreadable'}"
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
            if old is None or old[1] != digest:
                changed = True
            seen[e.path] = (key, digest)
        if set(seen) != set(cache):
            changed = True
        self._stat_cache = seen
        if changed or self._scan_sig is None:
            h = hashlib.sha256()
            for path in sorted(seen, key=lambda p: Path(p).name):
                h.update(Path(path).name.encode("utf-8", "surrogatepass") + b"\0" + seen[path][1])
            self._scan_sig = h.hexdigest()[:16]
        return self._scan_sig

    async def _notify(self, wake: asyncio.Event) -> None:
        """Set ``wake`` whenever the kernel reports a change in the folder (inotify through
        watchfiles). Ends when that is not possible (no watchfiles, no folder, no watches
        left); ``watch`` then polls every ``interval``."""
        try:
            from watchfiles import awatch
        except ImportError:  # pragma: no cover - a dependency; polling still works without it
            return
        try:
            # step: how often watchfiles' thread takes the GIL to look for a stop (50 ms was
            # a measurable share of the idle daemon at 10,000 properties)
            async for _ in awatch(self.folder, recursive=False, debounce=400, step=200,
                                  watch_filter=None, ignore_permission_denied=True):
                wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("the mappings folder cannot be watched for changes; polling it instead",
                        folder=str(self.folder), error=f"{e.__class__.__name__}: {e}")
        finally:
            wake.set()  # the loop notices at once and polls from now on

    async def watch(self, interval: float = 1.0, full_scan_seconds: float = 30.0) -> None:
        """Scan the folder when it changes; after a change, wait until it stops changing, then reload.

        Editors save by writing a temporary file and renaming it over the old one, or by
        truncating and writing in several chunks: scanning contents (not reading events)
        sees both, and waiting for two equal scans ``settle_seconds`` apart means a file
        caught half-written is read again, whole, before anything is checked.

        Idle cost (issue 13): the kernel tells when something in the folder changed
        (inotify, through watchfiles), so with nothing changing the folder is scanned only
        every ``full_scan_seconds`` as a backstop (a change the kernel does not report, on a
        network file system for one); without notifications it is scanned every
        ``interval``, each scan a stat per file (``_scan``). Nothing raised in here ends the loop.
        """
        last_seen: str | None = None
        wake = asyncio.Event()
        notifier: asyncio.Task | None = asyncio.create_task(self._notify(wake), name="mapping-notify")
        retry_notify_at = time.monotonic() + full_scan_seconds
        if self.rt.mappings is None and getattr(self.rt, "mapping_errors", None):
            # started with a broken folder: those problems were logged at start already
            texts, _ = await asyncio.to_thread(read_texts, [self.folder])
            self._refused = fingerprint(texts)
        try:
            while True:
                try:
                    wake.clear()
                    self.scans += 1
                    sig = await asyncio.to_thread(self._scan)
                    if sig != last_seen:
                        while True:  # let a burst of writes finish
                            await asyncio.sleep(self.settle_seconds)
                            again = await asyncio.to_thread(self._scan)
                            if again == sig:
                                break
                            sig = again
                        last_seen = sig
                        # reload reads the folder and stops before parsing when the contents are
                        # the version in force, or the edit it refused last time (logged once)
                        result = await self.reload("file change")
                        if result.error:
                            last_seen = None  # the ledger failed, not the file: try again next poll
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a bad moment on the disk or the database: try again next poll
                    log.error("watching mappings failed; will try again", error=f"{e.__class__.__name__}: {e}")
                    last_seen = None
                if notifier is not None and notifier.done() and time.monotonic() >= retry_notify_at:
                    # the folder could not be watched (not there yet, say): try again now and then
                    retry_notify_at = time.monotonic() + full_scan_seconds
                    notifier = asyncio.create_task(self._notify(wake), name="mapping-notify")
                watching = notifier is not None and not notifier.done()
                if last_seen is None:
                    await asyncio.sleep(interval)  # something failed: poll until it works again
                elif watching:
                    try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                        async with asyncio.timeout(full_scan_seconds):
                            await wake.wait()
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(interval)
        finally:
            if notifier is not None:
                notifier.cancel()
                await asyncio.gather(notifier, return_exceptions=True)
