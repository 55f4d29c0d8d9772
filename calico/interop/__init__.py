"""Checkpoint interchange with mmdetection3d and OpenPCDet: key maps as data (``keymaps``), conversion both ways
(``convert``), the other framework's module settings (``frameworks``) and ``calico export`` (``cli``)."""
