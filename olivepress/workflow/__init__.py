"""The plan of a run: a loaded, checked workflow document and its pass steps."""
