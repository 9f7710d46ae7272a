"""Logging set-up: one line per record, structured `key=value` fields, never PHI."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s service={service} logger=%(name)s %(message)s",
        force=True,
    )
    # aiokafka logs every rebalance and retry at INFO/WARNING; keep its noise out of the way.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
