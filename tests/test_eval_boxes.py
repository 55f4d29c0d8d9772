"""lidar_boxes_to_nusc: hand-checked frame change, quaternion, velocity and default attributes."""

import numpy as np
import pytest
import torch
from pyquaternion import Quaternion

from calico.config import CLASSES
from calico.eval.boxes import default_attribute, lidar_boxes_to_nusc


def _rec():
    # lidar2ego: rotate +90 deg about z, then up 2 m; ego2global: translate (100, 200, 0)
    l2e = np.eye(4)
    l2e[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    l2e[:3, 3] = [0, 0, 2]
    e2g = np.eye(4)
    e2g[:3, 3] = [100, 200, 0]
    return {"token": "tok", "lidar2ego": l2e, "ego2global": e2g}


def test_hand_checked_transform():
    boxes = np.array([[1.0, 0.0, 0.5, 2.0, 4.0, 1.5, 0.0, 3.0, 0.0]])
    [d] = lidar_boxes_to_nusc(boxes, [0.7], [CLASSES.index("car")], _rec())
    # (1,0,.5) -> ego (0,1,2.5) -> global (100,201,2.5); yaw 0 -> +90 deg; v (3,0) -> (0,3)
    assert d["translation"] == pytest.approx([100.0, 201.0, 2.5])
    assert d["size"] == [2.0, 4.0, 1.5]
    assert Quaternion(d["rotation"]).yaw_pitch_roll[0] == pytest.approx(np.pi / 2)
    assert d["velocity"] == pytest.approx([0.0, 3.0], abs=1e-12)
    assert d["detection_name"] == "car" and d["detection_score"] == pytest.approx(0.7)
    assert d["attribute_name"] == "vehicle.moving" and d["sample_token"] == "tok"


def test_torch_inputs_nan_velocity_and_empty():
    boxes = torch.tensor([[0, 0, 0, 1, 1, 1, 0.3, float("nan"), float("nan")]])
    [d] = lidar_boxes_to_nusc(boxes, torch.tensor([0.5]), torch.tensor([CLASSES.index("pedestrian")]), _rec())
    assert d["velocity"] == [0.0, 0.0] and d["attribute_name"] == "pedestrian.standing"
    assert lidar_boxes_to_nusc(np.zeros((0, 9)), [], [], _rec()) == []


@pytest.mark.parametrize("name,speed,attr", [
    ("truck", 0.1, "vehicle.parked"), ("bus", 1.0, "vehicle.moving"),
    ("pedestrian", 0.5, "pedestrian.moving"), ("bicycle", 0.0, "cycle.without_rider"),
    ("motorcycle", 2.0, "cycle.with_rider"), ("barrier", 5.0, ""), ("traffic_cone", 0.0, ""),
])
def test_default_attributes(name, speed, attr):
    assert default_attribute(name, speed) == attr


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="lengths differ"):
        lidar_boxes_to_nusc(np.zeros((2, 9)), [1.0], [0, 0], _rec())
    with pytest.raises(ValueError, match="labels must index"):
        lidar_boxes_to_nusc(np.zeros((1, 9)), [1.0], [10], _rec())
    with pytest.raises(KeyError, match="lidar2ego"):
        lidar_boxes_to_nusc(np.zeros((1, 9)), [1.0], [0], {"token": "t", "ego2global": np.eye(4)})
