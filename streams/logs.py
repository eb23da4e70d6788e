"""Log setup: plain lines by default, one JSON object per line with TOPUP_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping

from streams.config import ConfigError

PLAIN = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(env: Mapping[str, str] = os.environ) -> None:
    fmt = env.get("TOPUP_LOG_FORMAT", "plain").lower()
    if fmt not in ("plain", "json"):
        raise ConfigError(f"TOPUP_LOG_FORMAT must be plain or json, not {fmt!r}")
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
