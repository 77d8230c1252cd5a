"""Logging in and out, and the checks every route makes about who may use it."""
