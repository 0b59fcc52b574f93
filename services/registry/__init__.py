"""The model registry service: models, immutable versions, aliases, previews and artifacts.

Modules: `settings` (registry-only settings), `tables` (schema + migrations),
`artifacts` (content-addressed blob stores), `records`/`validation`/`diff` (the
domain's data and rules), `store` (all domain logic, on SQLite or PostgreSQL),
`grpc_api` (proto <-> domain), `main` (wiring into the shared ServiceRuntime).
"""
