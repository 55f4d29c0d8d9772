"""Semantic pooling (paper §2.2): unsupervised regions per LiDAR point.

``semantic_pooling(points, cfg) -> (N,) int64`` region ids, -1 for semantic-less points.
"""

from calico.pooling.core import semantic_pooling

__all__ = ["semantic_pooling"]
