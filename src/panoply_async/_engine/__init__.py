"""The streaming engine: the ``SDK`` facade over the write buffer, delivery (senders,
concurrency, retries), checkpoints, the journal over the write-ahead log, replay,
transports, events and stats, and the pipeline that runs a source into the SDK."""
