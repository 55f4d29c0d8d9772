"""The methods and grids of the paper's tables, as data: what ``calico study`` runs and the reports label.

A ``Method`` is a pre-training chain of ``calico pretrain`` stages and a fine-tuning modality; a ``Grid`` is
methods × label fractions. Kept apart from ``calico.apps.study`` (which runs them) so that the report figures can
name methods without importing the study runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    label: str  # as in the paper's tables
    modality: str  # "L", "C" or "L+C"
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()  # pre-training chain: (stage, --set overrides)


# Every method of Tables 1, 4, 5 and 7, built from `calico pretrain` stages. Distillation stages start from
# the PRC checkpoint (their frozen teacher) and their checkpoints carry it, so one --init covers both branches.
METHODS: dict[str, Method] = {
    "rand_l": Method("Rand. Init.", "L"),
    "pointcontrast": Method("PointContrast", "L", (("pointcontrast", ()),)),
    "proposalcontrast": Method("ProposalContrast", "L", (("proposalcontrast", ()),)),
    "plrc": Method("PLRC", "L", (("plrc", ()),)),
    "prc": Method("PRC", "L", (("prc", ()),)),
    "rand_lc": Method("Rand. Init. (L+C)", "L+C"),
    "prc_randc": Method("PRC+Rand. Init. (C)", "L+C", (("prc", ()),)),
    "pointcontrast_lc": Method("PointContrast (L) + Rand. Init. (C)", "L+C", (("pointcontrast", ()),)),
    "simipu": Method("SimIPU", "L+C", (("simipu", ()),)),
    "prc_bevdistill": Method("PRC+BEVDistill", "L+C", (("prc", ()), ("bevdistill", ()))),
    "calico": Method("CALICO", "L+C", (("prc", ()), ("rad", ()))),
    "rand_c": Method("Rand. Init. (C)", "C"),
    "vanilla_c": Method("Vanilla Distillation", "C", (("prc", ()), ("vanilla_distill", ()))),
    "bevdistill_c": Method("BEVDistill", "C", (("prc", ()), ("bevdistill", ()))),
    "rad_c": Method("RAD", "C", (("prc", ()), ("rad", ()))),
    **{f"prc_a{a}": Method(f"PRC α={a}", "L", (("prc", (f"pretrain.alpha={a}",)),))
       for a in ("0.1", "0.25", "0.5", "0.75", "0.9")},
}


@dataclass(frozen=True)
class Grid:
    title: str
    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    task: str = "det"  # "det" (NDS/mAP table) or "seg" (IoU table)
    overrides: tuple[str, ...] = field(default=())


GRIDS: dict[str, Grid] = {
    "table1": Grid("Table 1: 3D detection, label fractions", (
        "rand_l", "pointcontrast", "proposalcontrast", "plrc", "prc", "prc_randc", "simipu", "prc_bevdistill",
        "calico"), (0.05, 0.10, 0.20, 0.50)),
    "table4": Grid("Table 4: BEV map segmentation IoU", (
        "rand_lc", "prc_randc", "simipu", "prc_bevdistill", "calico"), (0.05, 0.10, 0.20, 0.50), task="seg"),
    "table5": Grid("Table 5: α in PRC", tuple(f"prc_a{a}" for a in ("0.1", "0.25", "0.5", "0.75", "0.9")),
                   (0.05, 0.50)),
    "table7": Grid("Table 7: camera-only and RAD", (
        "plrc", "prc", "rand_c", "vanilla_c", "bevdistill_c", "rad_c", "calico"), (0.10, 0.50)),
    "demo": Grid("Demo: L+C detection", ("rand_lc", "prc_randc", "calico", "pointcontrast_lc"), (0.25,)),
    # issue 11's protocol: pre-training on every train keyframe (labels unused), fine-tuning on a fraction,
    # paired seeds against the random init of the same modality (calico.eval.stats)
    "efficiency": Grid("Label efficiency: pre-training on the whole unlabeled train split", (
        "rand_l", "pointcontrast", "prc", "rand_lc", "calico"), (0.02, 0.05, 0.10, 0.20, 1.00)),
}

# Hyper-parameters each arm may pick from (`calico study --tune`), scored on the held-out part of the *train*
# split (calico.data.splits.holdout_parts), never on val. Randomly initialised arms choose the lr; pre-trained
# arms choose how much slower their pre-trained parts train (the heads keep the base lr). Same count for both:
# two each, the cpu preset's setting and one other, which is what a 2-core study affords (`--tune`).
TUNE_CANDIDATES: dict[str, tuple[tuple[str, ...], ...]] = {
    "random": (("finetune.lr=0.0005",), ("finetune.lr=0.00025",)),
    "pretrained": (("finetune.pretrained_lr_mult=1.0",), ("finetune.pretrained_lr_mult=0.2",)),
}


def baseline_of(name: str, methods: tuple[str, ...]) -> str | None:
    """The randomly initialised method of the same modality in ``methods`` (None for itself or when absent)."""
    if not METHODS[name].stages:
        return None
    return next((m for m in methods if not METHODS[m].stages and METHODS[m].modality == METHODS[name].modality),
                None)


def chain_baselines_of(name: str, methods: tuple[str, ...]) -> list[str]:
    """The pre-trained methods in ``methods`` of the same modality whose pre-training chain is a strict prefix
    of ``name``'s (CALICO's prc -> rad against PRC + random camera's prc): the pair isolates what the later
    stages add, as both share the earlier checkpoints and the fine-tuning seeds."""
    chain = METHODS[name].stages
    return [m for m in methods if m != name and METHODS[m].modality == METHODS[name].modality
            and 0 < len(METHODS[m].stages) < len(chain) and chain[:len(METHODS[m].stages)] == METHODS[m].stages]
