"""Process logging: a dictConfig YAML file (Synapse's log_config) or stderr, secrets scrubbed."""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path

import yaml

from hamlet.host.log_redaction import install_redaction
from hamlet.runtime.logcontext import DEFAULT_LOG_FORMAT


def setup_logging(log_config: Path | None, level: int = logging.INFO) -> None:
    install_redaction()
    if log_config is not None:
        with log_config.open() as f:
            logging.config.dictConfig(yaml.safe_load(f))
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(DEFAULT_LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
