"""HTTP and WebSocket controllers: parse, authorise (guards), call a service, return a schema."""
