"""Packaged SQL, one folder per backend."""
