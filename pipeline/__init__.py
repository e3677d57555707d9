"""The experiment pipeline around the `maskformer` library: stages, CLI, flows and tracking."""
