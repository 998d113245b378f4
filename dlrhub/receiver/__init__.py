"""HTTP: provider callbacks, the query API, health and metrics."""
