"""Development environment: an embedded Kafka broker, topic creation and `make run`."""
