"""Getting data into the canonical layout: the source registry, HTTP downloads, safe extraction, per-image
conversion and the worker pool they run in."""
