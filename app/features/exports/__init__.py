"""Users export: asynchronous CSV export with progress, stored in PostgreSQL chunks."""
