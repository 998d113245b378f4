"""The operator console: pages, static assets, API docs."""
