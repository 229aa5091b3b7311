"""Guiroy et al., Towards Understanding Generalization in Gradient-Based Meta-Learning, 2019."""
