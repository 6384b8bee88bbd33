"""Synthetic multi-appearance collections of the procedural head, with ground truth.

`python -m pav.synthetic out=DIR [appearances=5 frames=100 size=256 seed=0]`.
"""
