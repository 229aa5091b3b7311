"""Baik et al., Meta-Learning with Adaptive Hyperparameters (ALFA), NeurIPS 2020."""
