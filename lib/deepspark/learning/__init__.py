"""Deep learning: training data from gold tables, models, distributed training, inference."""
