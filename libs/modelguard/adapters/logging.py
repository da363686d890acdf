"""structlog configuration: one JSON object per line on stderr, with ISO timestamps.

Services call :func:`configure_logging` once at start; libraries only call
``structlog.get_logger()`` and bind ids (model, version, prediction_id, decision_id).
"""

from __future__ import annotations

import logging
import sys

import structlog


class _StderrLogger:
    """Writes each rendered line to the ``sys.stderr`` of the moment of the call.

    Binding the stream at configure time breaks when stderr is later replaced (test
    capture, daemonisation): logging must never raise into the code that logs.
    """

    def msg(self, message: str) -> None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (ValueError, OSError):
            pass  # a closed or broken stderr loses the line, never the caller

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route structlog (and stdlib logging) to stderr as JSON lines (or console text)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )
