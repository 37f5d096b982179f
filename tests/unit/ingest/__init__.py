"""Unit tests of ingest/."""
