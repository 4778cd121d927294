"""Where passes run: the local process, another Python environment, or AzureML."""
