"""Data into the canonical layout: source registry, HTTP download, safe extraction, conversion, pool."""
