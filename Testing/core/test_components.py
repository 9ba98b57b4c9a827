import numpy as np

from u2adcore.scoring.components import top_components


def test_keeps_top_k_by_summed_weight_ranked():
    w = np.zeros((20, 20))
    w[1:3, 1:3] = 1.0      # sum 4
    w[10:14, 10:12] = 0.9  # sum 7.2
    w[17, 17] = 5.0        # sum 5, single pixel
    w[5, 15] = 0.1         # sum 0.1
    labels = top_components(w > 0, w, k=3)
    assert labels[10, 10] == 1 and labels[17, 17] == 2 and labels[1, 1] == 3
    assert labels[5, 15] == 0
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_min_size_drops_small_components_and_diagonals_connect():
    w = np.zeros((10, 10))
    w[2, 2] = w[3, 3] = 1.0   # 8-connected diagonal pair: one component of 2 px
    w[7, 7] = 9.0             # 1 px, dropped by min_size=2
    labels = top_components(w > 0, w, k=3, min_size=2)
    assert labels[2, 2] == labels[3, 3] == 1
    assert labels[7, 7] == 0


def test_mean_sum_prefers_dense_components():
    w = np.zeros((10, 30))
    w[0, 0:20] = 0.3          # sum 6, mean .3 -> 1.8
    w[5, 0:2] = 2.0           # sum 4, mean 2 -> 8
    assert top_components(w > 0, w, k=1, score="sum")[0, 0] == 1
    assert top_components(w > 0, w, k=1, score="mean_sum")[5, 0] == 1


def test_empty_input():
    assert top_components(np.zeros((4, 4), bool), np.zeros((4, 4))).sum() == 0
