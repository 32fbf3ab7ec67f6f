"""Reports: report.json is the source; Markdown tables and PNG plots are rendered from it."""
