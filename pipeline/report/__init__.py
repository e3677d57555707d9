"""The run report: its content, its rendering (HTML, Markdown), its figures and the comparison of runs."""
