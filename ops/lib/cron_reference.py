#!/usr/bin/env python3
"""Reference next fire times from croniter (Vixie semantics: day-of-month and day-of-week OR-ed).

Reads lines "EXPR<TAB>START_EPOCH<TAB>COUNT" on stdin; prints, per line, COUNT epoch seconds separated
by spaces (UTC). Used by the tests to check `CronExpression` against an independent implementation.
"""
import sys
from datetime import datetime, timezone

from croniter import croniter

for line in sys.stdin:
    expr, start, count = line.rstrip("\n").split("\t")
    it = croniter(expr, datetime.fromtimestamp(int(start), tz=timezone.utc))
    print(" ".join(str(int(it.get_next(float))) for _ in range(int(count))))
