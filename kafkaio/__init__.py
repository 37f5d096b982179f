"""Kafka helpers both services share: the default partitioner with remembered hashes, per-partition batches."""
