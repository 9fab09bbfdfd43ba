"""Sample data for the demo domain: a seeded retail shop and real handwritten digits."""
