"""Goldblum, Reich, Fowl, Ni, Cherepanova & Goldstein, Unraveling Meta-Learning: Understanding Feature
Representations for Few-Shot Tasks, ICML 2020."""
