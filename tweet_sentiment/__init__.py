"""Tweet sentiment: shared code for training, serving and monitoring."""
