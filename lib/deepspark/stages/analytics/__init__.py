"""MLlib analytics over gold tables: segmentation, association rules, decision trees."""
