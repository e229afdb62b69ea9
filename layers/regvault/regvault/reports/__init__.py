"""Reports: JSON, Markdown and HTML rendering, scheduled publishing, and `regvault status`."""
