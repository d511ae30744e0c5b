"""Pydantic models at the API's edges, one module per resource; the OpenAPI document is generated from them."""
