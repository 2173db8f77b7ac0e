"""structlog set up to write JSON lines to stderr.

Over stdio, stdout belongs to the protocol: nothing here ever writes to it. The standard library's
root logger gets the same JSON formatter, so the SDK's own records (and uvicorn's) come out the same
way. Call `setup_logging` before building the MCPServer: the SDK's `basicConfig` then finds a
handler already installed and leaves it alone.
"""

from __future__ import annotations

import logging
import sys

import structlog

from model_mcp.log_limits import SUPPRESSED_FIELD, RepeatLimitFilter

_SHARED_PROCESSORS: list = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED_PROCESSORS, structlog.stdlib.ExtraAdder(allow=[SUPPRESSED_FIELD])],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    # Identical lines repeated many times a second (an accept() storm) are counted, not written.
    handler.addFilter(RepeatLimitFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python warnings (a numpy RuntimeWarning, a library's DeprecationWarning) would be printed
    # raw on stderr; through the `py.warnings` logger they become JSON lines like everything else.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
