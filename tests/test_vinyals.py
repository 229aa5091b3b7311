"""vinyals2016-table1's scoring pieces against numpy loops: cosine nearest neighbour, and accuracy that refuses to score
a diverged fine-tuning."""

import numpy as np
import torch

from benchmarks.anchors.vinyals2016_table1 import cosine_nearest_neighbour, query_accuracy


def test_cosine_nearest_neighbour_predicts_the_label_of_the_most_similar_support_example():
    g = np.random.default_rng(0)
    support, query = g.normal(size=(10, 6)), g.normal(size=(7, 6))
    labels = np.array([0, 1, 2, 3, 4] * 2)
    scores = cosine_nearest_neighbour(torch.from_numpy(support), torch.from_numpy(labels), torch.from_numpy(query), 5).numpy()
    for q in range(len(query)):
        similarity = [query[q] @ s / np.linalg.norm(query[q]) / np.linalg.norm(s) for s in support]
        assert scores[q].argmax() == labels[int(np.argmax(similarity))]
        for c in range(5):
            assert np.isclose(scores[q, c], max(sim for sim, y in zip(similarity, labels) if y == c))


def test_accuracy_of_non_finite_scores_is_nan_not_a_chance_guess():
    y = torch.tensor([0, 1, 1])
    good = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    assert np.isclose(query_accuracy(good, y), 100.0 * 2 / 3)  # float32 mean
    for bad in (float("nan"), float("inf")):
        scores = good.clone()
        scores[2, 1] = bad
        assert np.isnan(query_accuracy(scores, y))
