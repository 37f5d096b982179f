"""Wire types: raw NCS callbacks, derived events and recording snapshots (pydantic)."""
