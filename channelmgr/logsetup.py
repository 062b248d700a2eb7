"""structlog: JSON lines on a service, a person's view on a terminal; never guest data.

Every job binds run_id, channel and property through contextvars, so each line it writes
carries them. The masker runs last before rendering: no line carries a guest's name,
phone, e-mail or ID number, or a credential.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from channelmgr.security import structlog_masker


def configure(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info", stream=None) -> None:
    stream = stream or sys.stdout
    if fmt == "auto" and stream.isatty():
        # a person at a terminal: a summary and a line per channel (channelmgr/terminal.py)
        from channelmgr.terminal import view_for

        renderer = view_for(stream, level)
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _drop_none,
            structlog_masker,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # libraries' own logging: warnings and worse, through the same stream
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(levelname)s %(name)s: %(message)s",
                        force=True)
    for noisy in ("apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _drop_none(_logger, _method, event_dict):
    return {k: v for k, v in event_dict.items() if v is not None}
