"""calico-bev: CALICO (ICLR 2024) self-supervised camera-LiDAR pre-training for BEV perception."""

__version__ = "0.1.0"
