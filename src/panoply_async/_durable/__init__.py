"""What outlives a request or a process: the spool (a dead-letter file per SDK) and the
write-ahead log (``wal/``)."""
