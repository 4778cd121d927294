"""AzureML: the workspace, the service interface, environments, jobs (per pass or the whole workflow)."""
