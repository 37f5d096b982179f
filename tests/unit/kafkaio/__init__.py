"""Unit tests of kafkaio/."""
