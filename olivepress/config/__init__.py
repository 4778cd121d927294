"""The workflow document: typed sections, loading, and error rendering."""
