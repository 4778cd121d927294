"""The engine: fingerprints, cache keys, the cache, and running a workflow."""
