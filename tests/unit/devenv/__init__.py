"""Unit tests of devenv/ (make run, make demo)."""
