"""Typed msgspec schemas: the only shapes that cross the HTTP boundary."""
