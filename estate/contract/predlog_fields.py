"""The prediction log line's fixed names and its size limit (`estate.contract.predlog`
defines the lines themselves and re-exports these).

Apart from the line models so that the writer (predict's and analyze's
estate/serving/predlog.py) imports the names without building the five model classes
only readers use (~2 ms of a cold start).
"""

from __future__ import annotations

from typing import Final

EVENT: Final = "prediction"
TRACE_FIELD: Final = "logging.googleapis.com/trace"
SPAN_FIELD: Final = "logging.googleapis.com/spanId"
SAMPLED_FIELD: Final = "logging.googleapis.com/trace_sampled"
#: Cloud Logging drops an entry over 256 KB (payload and metadata); a writer keeps every
#: line at most this long, truncating the one row that alone would not fit (``truncated``).
MAX_LINE_BYTES: Final = 200_000
