"""Unit tests of processor/."""
