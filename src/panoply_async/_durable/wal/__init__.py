"""The write-ahead log: frame format, segment files, the log itself, and the packer
that writes a message's body straight into a frame."""
