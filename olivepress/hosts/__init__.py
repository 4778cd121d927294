"""Hosts: what runs the engine somewhere else (a whole workflow as one AzureML job) and brings its results home
through the engine's public API. They sit above the engine and below the CLI."""
