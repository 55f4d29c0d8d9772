"""Deterministic nuScenes-style tokens (32 hex digits) derived from the seed and a running counter."""

from __future__ import annotations

import hashlib
from collections import defaultdict


class Tokens:
    """``new(kind)`` returns md5(seed, kind, n) for the n-th token of that kind: same arguments, same tokens."""

    def __init__(self, seed: int):
        self.seed = seed
        self.counts: dict[str, int] = defaultdict(int)

    def new(self, kind: str) -> str:
        n = self.counts[kind]
        self.counts[kind] += 1
        return hashlib.md5(f"calico-synth/{self.seed}/{kind}/{n}".encode()).hexdigest()
