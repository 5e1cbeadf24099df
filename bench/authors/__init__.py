"""Helpers of bench/compare_authors.py: the authors' La-MAML code driven side by side with ours.

``theirs``: importing their unmodified files from a checkout, their scripts' flags, and what their
code needs to run on a CPU in float64. ``tapes``: their random draws recorded and handed to ours.
``cases``: the Table 2 methods on CIFAR- and Tiny-ImageNet-shaped synthetic data.
"""
