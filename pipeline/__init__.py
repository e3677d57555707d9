"""The pipeline around `maskformer`: params, outputs, stages, data, orchestration, tracking, report."""
