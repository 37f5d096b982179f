"""Unit tests of schemas/."""
