"""Pre-training (paper §2.2-2.4, §3.1): ``losses`` (eq. 1-3 and baselines), ``augment`` (view transform T),
``sampling`` (N semantic-rich + M semantic-less points), ``projector`` (P_PLRC, P_RAPC, P_RAD) and ``methods``
(one module per stage; ``build_method(name, model, cfg)``). Import the submodules directly: ``methods``
pulls in ``calico.models`` (timm), the others only need torch."""
