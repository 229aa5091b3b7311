"""The methods' own Omniglot tables (MAML, Reptile, Prototypical Networks, Relation Networks): what this machine reproduces on real data."""
