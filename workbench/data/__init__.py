"""Data: datasets and their versions, the train/holdout split, profiling and preprocessing."""
