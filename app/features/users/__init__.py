"""The users resource: HTTP routes, request/response schemas, rules and persistence."""
