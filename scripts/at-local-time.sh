#!/usr/bin/env bash
# Run a command with the clock moved to today's HH:MM in a time zone (libfaketime), so
# what depends on the hour can be run at a chosen instant: e.g. Shanghai late night.
#   scripts/at-local-time.sh Asia/Shanghai 02:30 .venv/bin/python -m pytest tests/sync
# The clock keeps ticking from there; every process started under it (sandboxes, daemons)
# sees the same moved clock, since the offset is relative, not a fixed start time.
set -euo pipefail
zone="$1"; hhmm="$2"; shift 2
command -v faketime >/dev/null || { echo "faketime is not installed (apt-get install faketime)" >&2; exit 1; }
now=$(date +%s)
target=$(TZ="$zone" date -d "$(TZ="$zone" date +%F) $hhmm" +%s)
offset=$((target - now))
sign=$([ "$offset" -ge 0 ] && echo "+" || echo "")
echo "at $(TZ="$zone" date -d "@$target" '+%F %H:%M %Z') (offset ${sign}${offset}s): $*" >&2
exec faketime -f "${sign}${offset}s" "$@"
