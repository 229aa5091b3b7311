"""Lee et al., Learning to Generalize to Unseen Tasks with Bilevel Optimization (L2G), 2019; and its Omniglot claim check."""
