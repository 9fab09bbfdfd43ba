"""The pipeline's stages in order: generate, ingest, clean, validate, features."""
