"""Training methods (continual pretraining, instruction tuning, DPO) run by the training worker."""
