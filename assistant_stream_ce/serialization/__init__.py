"""Wire formats: each is a StreamEncoder plus a Starlette response."""
