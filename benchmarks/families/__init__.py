"""Table families several papers share: metric learners on image episodes, gradient-based learners on Omniglot."""
