"""The report stage: the run report (HTML and Markdown) from the saved stage results."""
