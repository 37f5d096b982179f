"""The stream processor: the pure core and its adapters (replay CLI, Faust agent)."""
