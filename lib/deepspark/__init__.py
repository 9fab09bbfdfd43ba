"""deepspark: distributed data-quality, analytics and deep-learning pipeline on Spark + Delta."""
