"""Stateless HTTP shim: verify NCS callbacks and publish their raw bodies to Kafka."""
