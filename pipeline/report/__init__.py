"""The run report: what it shows (content), how it looks (render: HTML and Markdown), its figures, and the
comparison of MLflow runs."""
