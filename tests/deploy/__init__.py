"""Checks of deploy/: the Kubernetes overlays and the compose file, against schemas and the apps' own settings."""
