"""The public API's OpenAPI 3.1 contract, generated from the pydantic models."""
