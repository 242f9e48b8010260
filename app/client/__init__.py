"""The HTTP client side of `findap`: commands that talk to a running server."""
