"""The prediction log: rows and batch segments written by every deployment, and the windows monitoring reads.

Modules: ``_rows`` (row-logged predictions), ``_segments`` (batch segments), ``_read`` (windows,
counts, latencies), ``_feedback`` (labels), ``_writer`` (the batched background writer).
"""

from workbench.prediction_log._feedback import record_feedback
from workbench.prediction_log._read import (
    LOG_FRAME_COLUMNS,
    VARIANTS,
    count_rows,
    has_predictions,
    latency_frame,
    log_frame,
)
from workbench.prediction_log._rows import (
    LOG_COLUMNS,
    PROBA_PREFIX,
    REQUEST_ID_MAX,
    encode_answer,
    insert_rows,
    insert_shadow_rows,
    json_safe,
    make_row,
    make_shadow_row,
)
from workbench.prediction_log._segments import (
    SEGMENT_COMPRESSION,
    SEGMENT_FEATURE_PREFIX,
    SEGMENT_TOKEN_MAX,
    LogSegment,
    encode_segment,
    insert_segment,
    read_segment,
    segment_table,
)
from workbench.prediction_log._writer import PredictionLogWriter

__all__ = [
    "LOG_COLUMNS",
    "LOG_FRAME_COLUMNS",
    "PROBA_PREFIX",
    "REQUEST_ID_MAX",
    "SEGMENT_COMPRESSION",
    "SEGMENT_FEATURE_PREFIX",
    "SEGMENT_TOKEN_MAX",
    "VARIANTS",
    "LogSegment",
    "PredictionLogWriter",
    "count_rows",
    "encode_answer",
    "encode_segment",
    "has_predictions",
    "insert_rows",
    "insert_segment",
    "insert_shadow_rows",
    "json_safe",
    "latency_frame",
    "log_frame",
    "make_row",
    "make_shadow_row",
    "read_segment",
    "record_feedback",
    "segment_table",
]
