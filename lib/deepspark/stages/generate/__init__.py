"""The generate stage: sample data for the demo domain (a seeded retail shop and real
handwritten digits), written as raw landing files."""
