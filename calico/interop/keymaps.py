"""Key maps between calico's model and mmdetection3d / OpenPCDet, as data.

Each rule says: a calico key (regex over ``model.state_dict()`` keys, parts included) becomes this key of the
other framework, with this layout change. Written from reading their model code (not copied):

* mmdetection3d ``PillarFeatureNet`` (``voxel_encoders/pillar_encoder.py``): ``pfn_layers[i]`` = ``PFNLayer``
  with ``linear`` (no bias) and ``norm`` (BN1d, eps 1e-3); inputs ``[point features, xyz - pillar mean,
  xyz - pillar centre]``, our order too. ``SECOND`` (``backbones/second.py``): ``blocks[i]`` is one flat
  ``Sequential(conv, bn, relu, conv, bn, relu, ...)``, so our ``blocks.i.k.{0,1}`` is their ``blocks.i.{3k,3k+1}``.
  ``SECONDFPN`` (``necks/second_fpn.py``): ``deblocks[i] = Sequential(up, bn, relu)``; ``up`` is a
  ``ConvTranspose2d`` for stride > 1 and, with ``use_conv_for_no_stride=True`` (BEVFusion's config), a
  ``Conv2d`` for stride 1 -- the same modules as ours. The LiDAR keys carry BEVFusion's prefixes
  (``pts_voxel_encoder``, ``pts_backbone``, ``pts_neck``; ``PointPillarsScatter`` has no weights).
  BEVFusion's camera branch (``projects/BEVFusion``): ``img_backbone`` (mmdet ``ResNet`` uses torchvision's
  names, as timm's ResNet does; Swin's layouts differ and are not mapped), ``view_transform`` = ``LSSTransform``
  (``depth_lss.py``): ``depthnet`` (1x1 conv, depth bins first, as ours) and ``downsample`` (3 x conv, BN with
  eps 1e-5, ReLU, only for a 2x downsample).
* OpenPCDet ``PillarVFE`` (``backbones_3d/vfe/pillar_vfe.py``): ``vfe.pfn_layers.i.{linear,norm}``;
  ``BaseBEVBackbone`` (``backbones_2d/base_bev_backbone.py``): ``blocks[i] = Sequential(ZeroPad2d, conv, bn,
  relu, conv, bn, relu, ...)`` (our ``blocks.i.k.{0,1}`` is their ``blocks.i.{3k+1,3k+2}``) and
  ``deblocks[i] = Sequential(ConvTranspose2d, bn, relu)`` for every upsample stride >= 1, so our stride-1 1x1
  ``Conv2d`` becomes a 1x1 ``ConvTranspose2d``: the weight's first two dims swap.
* mmdet's ``SwinTransformer`` (``mmdet/models/backbones/swin.py``, and its ``swin_converter`` for the
  original repository's names): see the Swin rules below.

What has no counterpart (our FPN's output conv ``neck.out``, the camera FPN, decoders, fuser, heads) is reported,
not guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = ("mmdet3d", "openpcdet")
BN = r"(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)"


@dataclass(frozen=True)
class Rule:
    """``ours`` (regex, full match) -> ``theirs`` (a template: ``{name}`` copies a captured group, ``{k*3+1}``
    computes from an integer group). ``layout``: "" (same tensor), "swap01" (1x1 Conv2d <-> 1x1
    ConvTranspose2d), "swapHW" (3x3 conv on a BEV map whose rows are x there, y here), "bn_eps" (running_var
    shifted by the eps difference, see ``EPS``), "unfold" / "unfold_norm" (Swin patch merging's 4C channels,
    position-major here, channel-major there); one change per tensor."""

    ours: str
    theirs: str
    layout: str = ""
    when: str = ""  # a condition on the model, checked by ``calico.interop.convert`` (see ``CONDITIONS`` there)


# BN eps: ours 1e-3 everywhere (calico.models.pointpillars.conv_bn_relu); BEVFusion's LSS downsample uses
# torch's default 1e-5. Shifting running_var by the difference keeps (x - mean) / sqrt(var + eps) identical.
EPS = {"ours": 1e-3, "mmdet3d_lss": 1e-5}

LIDAR_MMDET3D = [
    Rule(r"lidar_backbone\.pfn\.linear\.weight", "pts_voxel_encoder.pfn_layers.0.linear.weight"),
    Rule(rf"lidar_backbone\.pfn\.norm\.{BN}", "pts_voxel_encoder.pfn_layers.0.norm.{p}"),
    Rule(r"lidar_backbone\.backbone\.blocks\.(?P<i>\d+)\.(?P<k>\d+)\.0\.weight", "pts_backbone.blocks.{i}.{k*3}.weight"),
    Rule(rf"lidar_backbone\.backbone\.blocks\.(?P<i>\d+)\.(?P<k>\d+)\.1\.{BN}", "pts_backbone.blocks.{i}.{k*3+1}.{p}"),
    Rule(r"lidar_backbone\.neck\.ups\.(?P<i>\d+)\.0\.weight", "pts_neck.deblocks.{i}.0.weight"),
    Rule(rf"lidar_backbone\.neck\.ups\.(?P<i>\d+)\.1\.{BN}", "pts_neck.deblocks.{i}.1.{p}"),
]

SWIN = r"camera_backbone\.net\.layers_(?P<i>\d)\."
CAMERA_MMDET3D = [
    Rule(r"camera_backbone\.net\.(?P<rest>(?:conv1|bn1|layer\d)\..+)", "img_backbone.{rest}", when="resnet"),
    # timm's Swin (>= 0.9) -> mmdet's SwinTransformer: attn -> attn.w_msa, mlp.fc1/fc2 -> ffn.layers.0.0 / 1, and
    # timm's patch merging opens stage i (layers_i.downsample) where mmdet's closes stage i - 1; its 4C channels
    # are position-major there, channel-major (nn.Unfold) in mmdet ("unfold" layouts). relative_position_index is
    # a persistent buffer in mmdet only: exported from our module, recomputed here on import.
    Rule(r"camera_backbone\.net\.patch_embed\.proj\.(?P<p>weight|bias)", "img_backbone.patch_embed.projection.{p}",
         when="swin"),
    Rule(r"camera_backbone\.net\.patch_embed\.norm\.(?P<p>weight|bias)", "img_backbone.patch_embed.norm.{p}",
         when="swin"),
    Rule(SWIN + r"blocks\.(?P<j>\d+)\.attn\.(?P<rest>relative_position_bias_table|relative_position_index|"
                r"qkv\.weight|qkv\.bias|proj\.weight|proj\.bias)", "img_backbone.stages.{i}.blocks.{j}.attn.w_msa.{rest}",
         when="swin"),
    Rule(SWIN + r"blocks\.(?P<j>\d+)\.(?P<n>norm1|norm2)\.(?P<p>weight|bias)", "img_backbone.stages.{i}.blocks.{j}.{n}.{p}",
         when="swin"),
    Rule(SWIN + r"blocks\.(?P<j>\d+)\.mlp\.fc1\.(?P<p>weight|bias)", "img_backbone.stages.{i}.blocks.{j}.ffn.layers.0.0.{p}",
         when="swin"),
    Rule(SWIN + r"blocks\.(?P<j>\d+)\.mlp\.fc2\.(?P<p>weight|bias)", "img_backbone.stages.{i}.blocks.{j}.ffn.layers.1.{p}",
         when="swin"),
    Rule(SWIN + r"downsample\.reduction\.weight", "img_backbone.stages.{i-1}.downsample.reduction.weight", "unfold",
         when="swin"),
    Rule(SWIN + r"downsample\.norm\.weight", "img_backbone.stages.{i-1}.downsample.norm.weight", "unfold_norm",
         when="swin"),
    Rule(SWIN + r"downsample\.norm\.bias", "img_backbone.stages.{i-1}.downsample.norm.bias", "unfold_norm", when="swin"),
    Rule(r"view_transform\.depthnet\.(?P<p>weight|bias)", "view_transform.depthnet.{p}"),
    Rule(r"view_transform\.bev_conv\.(?P<j>\d)\.0\.weight", "view_transform.downsample.{j*3}.weight", "swapHW"),
    Rule(r"view_transform\.bev_conv\.(?P<j>\d)\.1\.running_var", "view_transform.downsample.{j*3+1}.running_var",
         "bn_eps"),
    Rule(r"view_transform\.bev_conv\.(?P<j>\d)\.1\.(?P<p>weight|bias|running_mean|num_batches_tracked)",
         "view_transform.downsample.{j*3+1}.{p}"),
]

LIDAR_OPENPCDET = [
    Rule(r"lidar_backbone\.pfn\.linear\.weight", "vfe.pfn_layers.0.linear.weight"),
    Rule(rf"lidar_backbone\.pfn\.norm\.{BN}", "vfe.pfn_layers.0.norm.{p}"),
    Rule(r"lidar_backbone\.backbone\.blocks\.(?P<i>\d+)\.(?P<k>\d+)\.0\.weight",
         "backbone_2d.blocks.{i}.{k*3+1}.weight"),
    Rule(rf"lidar_backbone\.backbone\.blocks\.(?P<i>\d+)\.(?P<k>\d+)\.1\.{BN}", "backbone_2d.blocks.{i}.{k*3+2}.{p}"),
    Rule(r"lidar_backbone\.neck\.ups\.(?P<i>\d+)\.0\.weight", "backbone_2d.deblocks.{i}.0.weight", "swap01",
         when="conv_up"),
    Rule(r"lidar_backbone\.neck\.ups\.(?P<i>\d+)\.0\.weight", "backbone_2d.deblocks.{i}.0.weight"),
    Rule(rf"lidar_backbone\.neck\.ups\.(?P<i>\d+)\.1\.{BN}", "backbone_2d.deblocks.{i}.1.{p}"),
]

RULES: dict[str, list[Rule]] = {"mmdet3d": LIDAR_MMDET3D + CAMERA_MMDET3D, "openpcdet": LIDAR_OPENPCDET}

# How each framework's own checkpoint file holds the state dict, and a key prefix that only it uses (detection).
CONTAINER = {"mmdet3d": "state_dict", "openpcdet": "model_state"}
SIGNATURE = {"mmdet3d": ("pts_voxel_encoder.", "pts_backbone.", "pts_neck.", "img_backbone.", "view_transform."),
             "openpcdet": ("vfe.", "backbone_2d.", "map_to_bev_module.", "dense_head.")}
NAMES = {"mmdet3d": "mmdetection3d", "openpcdet": "OpenPCDet"}

# Differences the weights cannot carry, printed with every export so nobody mistakes "loads" for "the same net".
_COMMON = ["their PFN max also sees a pillar's zero-padded slots (ours: its real points only)",
           "their BEV feature is the FPN concatenation; ours adds lidar_backbone.neck.out (no counterpart)"]
NOTES = {"mmdet3d": _COMMON + ["PillarFeatureNet(legacy=False) computes the decoration ours does",
                               "BEVFusion's LSS puts frustum pixels at linspace(0, W-1, fW); ours at feature-cell "
                               "centres"],
         "openpcdet": _COMMON}

_COMPUTED = re.compile(r"\{(?P<g>\w+)(?:\*(?P<m>\d+))?(?P<a>[+-]\d+)?\}")


def render(template: str, groups: dict[str, str]) -> str:
    """Fill a rule's ``theirs`` template from the regex groups (``{k*3+1}`` -> 3 k + 1, ``{i-1}``)."""
    def fill(m: re.Match) -> str:
        if m["m"] is None and m["a"] is None:
            return groups[m["g"]]
        return str(int(groups[m["g"]]) * int(m["m"] or 1) + int(m["a"] or 0))

    return _COMPUTED.sub(fill, template)
