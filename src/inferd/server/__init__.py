"""Serving: a protocol-neutral DataPlane and the transports that call it."""
