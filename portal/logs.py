"""One log format and one time zone for every process of the portal (web, worker, scheduler):
UTC, marked with Z. The scheduler runs in BILLING_TZ (rq reads cron fields in local time), so
without this its lines were three hours off the worker's for the same moment."""
from __future__ import annotations

import logging
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%SZ"


def setup(level: int = logging.INFO) -> None:
    logging.Formatter.converter = time.gmtime  # every formatter, rq's own included
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=FORMAT, datefmt=DATE_FORMAT)
