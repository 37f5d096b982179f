"""Unit tests of core/."""
