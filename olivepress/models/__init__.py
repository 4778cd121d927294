"""Model handles, input model resolution, and the built-in default model."""
