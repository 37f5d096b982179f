"""The pure core: reorder buffer and per-recording state machine. No I/O, no clock."""
