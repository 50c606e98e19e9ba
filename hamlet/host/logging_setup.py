"""Process logging: a dictConfig YAML file (Synapse's log_config) or stderr, secrets scrubbed."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import yaml

from hamlet.host.log_redaction import install_redaction
from hamlet.runtime.logcontext import DEFAULT_LOG_FORMAT

# Logs name users, rooms and client addresses: owner and group only.
LOG_FILE_MODE = 0o640


def setup_logging(log_config: Path | None, level: int = logging.INFO) -> None:
    install_redaction()
    if log_config is not None:
        # Imported only for a log config: it brings pickle, sockets and queues along.
        from logging.config import dictConfig

        with log_config.open() as f:
            dictConfig(yaml.safe_load(f))
        restrict_log_files()
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(DEFAULT_LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def restrict_log_files() -> None:
    """Make every file a configured handler writes to at most `LOG_FILE_MODE`.

    Covers files opened now and files kept from earlier runs; the ones a
    rotating handler opens later are covered by the server's umask
    (`hamlet serve` sets 027).
    """
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for log in loggers:
        for handler in getattr(log, "handlers", ()):
            if not isinstance(handler, logging.FileHandler):
                continue
            path = Path(handler.baseFilename)
            if not path.exists():
                # A handler with delay=True opens its file on first use.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE))
            path.chmod(path.stat().st_mode & LOG_FILE_MODE)
