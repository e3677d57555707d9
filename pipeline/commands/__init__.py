"""Commands that are not DVC stages (run the flow, serve the deployment, compare runs): each is a
module `pipeline.commands.<name>` with `main(params_path, argv)`."""

COMMANDS: dict[str, str] = {
    "compare": "a table of all MLflow runs of an experiment (differing params, headline metrics)",
}
