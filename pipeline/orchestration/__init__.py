"""Running the stages: the Prefect flows (pipeline, sweep), run workspaces, forms, DVC's CLI."""
