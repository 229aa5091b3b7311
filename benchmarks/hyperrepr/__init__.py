"""Franceschi et al., A Bridge Between Hyperparameter Optimization and Learning-to-learn, 2017; and its Omniglot claim check."""
