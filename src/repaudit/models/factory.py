"""Encoder factory: a ``config/models.tsv`` row -> a timm backbone wrapped as an :class:`Encoder`.

An :class:`Encoder` maps raw images in [0, 1] (B, 3, H, W) to the backbone's pooled pre-logits
embedding. Resizing and normalisation happen inside it, so Jacobians are taken with respect to
raw pixels (Chung & Kim 2026, our reading of their App. F) and every encoder sees the same input
space.

The backbone is split into a *trunk* of sequential steps: step 0 is the embedding (ViT patch
embedding + positions, or the CNN stem) and step l the l-th block (ViT) or stage (CNN). The
output of step l is "layer l"; "final" is the pooled embedding after the final norm. Running the
steps after l on a layer-l hidden state is the partial forward that Euclidean convexity needs
(Tětková et al. 2025, ``forward_from_middle``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = ("zoo", "random", "hub", "checkpoint", "hf")


@dataclass(frozen=True)
class ModelSpec:
    """One row of ``config/models.tsv``."""

    model_id: str
    architecture: str
    weights: str
    tag: str = ""
    checkpoint: str = ""
    input_size: int = 224
    family: str = ""
    objective: str = ""
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping) -> ModelSpec:
        kwargs = row.get("kwargs") or {}
        if isinstance(kwargs, str):
            kwargs = json.loads(kwargs) if kwargs.strip() else {}
        return cls(
            model_id=str(row["model_id"]),
            architecture=str(row["architecture"]),
            weights=str(row["weights"]),
            tag=str(row.get("tag") or ""),
            checkpoint=str(row.get("checkpoint") or ""),
            input_size=int(row.get("input_size") or 224),
            family=str(row.get("family") or ""),
            objective=str(row.get("objective") or ""),
            kwargs=dict(kwargs),
        )

    @property
    def timm_name(self) -> str:
        """The timm name with its pretrained tag: ``architecture.tag`` for hub weights."""
        return (
            f"{self.architecture}.{self.tag}"
            if self.weights == "hub" and self.tag
            else (self.architecture)
        )

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def check_architecture(name: str) -> None:
    """Raise ValueError with close matches when timm does not know ``name``."""
    import difflib

    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown timm architecture {name!r}{hint} (see timm.list_models())")


def create_backbone(
    spec: ModelSpec, *, state_dict: Mapping | None = None, seed: int = 0
) -> nn.Module:
    """Create the timm backbone (``num_classes=0``) for ``spec``.

    ``hub`` downloads (or reads the hub cache for) the pinned tag; ``random`` and ``zoo``
    initialise from ``seed``; a ``state_dict`` (zoo or checkpoint weights) is then loaded
    strictly, except for classifier keys, which an embedding model does not have. ``hf`` rows
    load a transformers model (:mod:`repaudit.models.hf`) instead of a timm one.
    """
    import timm

    if spec.weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {spec.weights!r}")
    if spec.weights == "hf":
        from repaudit.models.hf import create_hf_backbone

        model = create_hf_backbone(spec, seed=seed)
        if state_dict is not None:  # this pipeline's fine-tuned copy: the same keys, strictly
            model.load_state_dict(dict(state_dict))
        return model.eval()
    check_architecture(spec.architecture)
    kwargs = dict(spec.kwargs)
    cifar_stem = kwargs.pop("cifar_stem", False)
    if not isinstance(cifar_stem, bool):
        raise ValueError(f"kwargs cifar_stem must be true or false, got {cifar_stem!r}")
    if cifar_stem and spec.weights == "hub":
        raise ValueError("cifar_stem replaces the stem of the hub weights; use zoo or random")
    torch.manual_seed(seed)
    model = timm.create_model(
        spec.timm_name, pretrained=spec.weights == "hub", num_classes=0, **kwargs
    )
    if cifar_stem:
        use_cifar_stem(model)
    if state_dict is not None:
        load_backbone_state(model, state_dict, source=spec.checkpoint or spec.model_id)
    return model.eval()


def use_cifar_stem(model: nn.Module) -> nn.Module:
    """Give a timm ResNet the CIFAR stem, in place: 3x3 conv, stride 1, no max-pool.

    The ImageNet stem (7x7/2 conv + 3x3/2 max-pool) shrinks a 32-px image to 8 px before the
    first stage and to 1 px at layer4; the CIFAR ResNets of He et al. (2016, arXiv 1512.03385,
    §4.2) and the solo-learn ResNet-18 that Fang et al. (2024, arXiv 2403.00642, App. F) train
    keep 32 px into layer1 (4 px at layer4). A single 7x7 conv1 is replaced by a 3x3 conv with
    padding 1 ("same"; solo-learn pads by 2) and timm's ResNet initialisation (Kaiming normal,
    fan-out) drawn from the global torch RNG, so a seeded build stays deterministic; a deep stem
    (resnet*d / *t: three 3x3 convs) keeps its convs, the first one with stride 1. Row kwarg
    ``{"cifar_stem": true}``.
    """
    conv = getattr(model, "conv1", None)
    first = conv[0] if isinstance(conv, nn.Sequential) and len(conv) else conv
    if not (
        isinstance(first, nn.Conv2d) and isinstance(getattr(model, "maxpool", None), nn.Module)
    ):
        raise ValueError(
            f"cifar_stem needs a timm ResNet (conv1 and maxpool), got {type(model).__name__}"
        )
    if first is conv:
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    else:
        first.stride = (1, 1)
    model.maxpool = nn.Identity()
    return model


def load_backbone_state(model: nn.Module, state_dict: Mapping, source: str = "") -> list[str]:
    """Load weights, dropping heads and wrappers; any missing or unexpected key is an error.

    Torchvision-layout ResNets (SSL releases, under ``module.``/``backbone.``/``encoder.``) map
    by name onto timm's ResNet (see :func:`repaudit.models.checkpoints.backbone_state`). Returns
    the dropped keys (classifier and projector heads), which are also logged.
    """
    from repaudit.models.checkpoints import backbone_state

    state, dropped, missing, unexpected = backbone_state(state_dict, model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"weights {source!r} do not fit {type(model).__name__}: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}); "
            "check the architecture column"
        )
    model.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    if dropped:
        logging.getLogger(__name__).info(
            "weights %r: dropped %d key(s) outside the backbone: %s",
            source,
            len(dropped),
            ", ".join(dropped),
        )
    return dropped


def state_dict_sha256(module: nn.Module) -> str:
    """Hash of every tensor in the state dict (name, dtype, shape, bytes), in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy())
    return digest.hexdigest()


# --------------------------------------------------------------------------- trunk


@dataclass
class Trunk:
    """Sequential decomposition of a backbone: ``tail(steps[-1](...steps[0](x)))`` == forward."""

    steps: list[Callable[[torch.Tensor], torch.Tensor]]
    tail: Callable[[torch.Tensor], torch.Tensor]
    kind: str  # "tokens" (B, T, D) or "maps" (B, C, H, W)
    num_prefix_tokens: int = 0
    has_cls: bool = False


def make_trunk(backbone: nn.Module) -> Trunk:
    """Split a timm ViT, ResNet or ConvNeXt-style model into embedding/stem, blocks, tail."""
    name = type(backbone).__name__
    if hasattr(backbone, "make_trunk"):  # repaudit.models.hf.HFBackbone splits itself
        return backbone.make_trunk()
    if hasattr(backbone, "blocks") and hasattr(backbone, "patch_embed"):  # VisionTransformer

        def embed(x):
            x = backbone.patch_embed(x)
            x = backbone._pos_embed(x)
            x = backbone.patch_drop(x)
            return backbone.norm_pre(x)

        blocks = [blk.__call__ for blk in backbone.blocks]
        return Trunk(
            steps=[embed, *blocks],
            tail=lambda x: backbone.forward_head(backbone.norm(x), pre_logits=True),
            kind="tokens",
            num_prefix_tokens=int(getattr(backbone, "num_prefix_tokens", 0)),
            has_cls=getattr(backbone, "cls_token", None) is not None,
        )
    if all(hasattr(backbone, f"layer{i}") for i in range(1, 5)) and hasattr(backbone, "conv1"):

        def stem(x):  # ResNet: the tap after the stem activation, as forward_intermediates
            return backbone.act1(backbone.bn1(backbone.conv1(x)))

        def stage1(x):
            return backbone.layer1(backbone.maxpool(x))

        return Trunk(
            steps=[stem, stage1, backbone.layer2, backbone.layer3, backbone.layer4],
            tail=lambda x: backbone.forward_head(x, pre_logits=True),
            kind="maps",
        )
    if hasattr(backbone, "stem") and hasattr(backbone, "stages"):  # ConvNeXt and kin

        def tail(x):
            x = backbone.norm_pre(x) if hasattr(backbone, "norm_pre") else x
            return backbone.forward_head(x, pre_logits=True)

        return Trunk(steps=[backbone.stem, *backbone.stages], tail=tail, kind="maps")
    raise ValueError(
        f"per-layer taps are implemented for timm ViTs, ResNets and ConvNeXt-style models; "
        f"{name} is none of these (use only the 'final' layer for it)"
    )


# --------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """Raw [0, 1] images -> pooled embedding, with per-layer taps and partial forwards.

    Parameters
    ----------
    backbone : timm model created with ``num_classes=0``
    input_size : side length the images are resized to (bilinear) before normalisation
    mean, std : per-channel normalisation (from the model's timm data config)
    pooling : ``"auto"`` (CLS for ViTs with a class token and token pooling, patch mean
        otherwise; channel average for CNN maps), ``"cls"``, or ``"mean"``
    """

    def __init__(self, backbone, input_size, mean, std, pooling: str = "auto") -> None:
        super().__init__()
        self.backbone = backbone
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.num_features = int(backbone.num_features)
        self.trunk = make_trunk(backbone)
        if pooling not in ("auto", "cls", "mean"):
            raise ValueError(f"pooling must be auto, cls or mean, got {pooling!r}")
        if pooling == "auto":
            token_pool = getattr(backbone, "global_pool", "token") == "token"
            pooling = "cls" if self.trunk.has_cls and token_pool else "mean"
        if pooling == "cls" and self.trunk.kind == "tokens" and not self.trunk.has_cls:
            raise ValueError("pooling 'cls' needs a model with a class token; use 'mean'")
        self.pooling = pooling if self.trunk.kind == "tokens" else "avg"

    @property
    def n_layers(self) -> int:
        """Number of tapped layers before "final" (embedding/stem + blocks/stages)."""
        return len(self.trunk.steps)

    def layer_names(self) -> list[str]:
        return [str(i) for i in range(self.n_layers)] + ["final"]

    def layer_pooling(self, layer: int) -> str:
        # The CLS token at the embedding output is cls_token + pos_embed[0]: the same for every
        # image (Tětková et al. pitfall), so layer 0 of a CLS model is pooled by patch mean.
        if self.pooling == "cls" and layer == 0:
            return "mean"
        return self.pooling

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(x))

    def pool(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        if self.trunk.kind == "maps":
            return hidden.mean(dim=(-2, -1))
        if self.layer_pooling(layer) == "cls":
            return hidden[:, 0]
        return hidden[:, self.trunk.num_prefix_tokens :].mean(dim=1)

    def hidden_states(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Unpooled outputs of steps 0..upto (all steps when ``upto`` is None)."""
        h = self.preprocess(x)
        out = []
        last = self.n_layers - 1 if upto is None else upto
        for step in self.trunk.steps[: last + 1]:
            h = step(h)
            out.append(h)
        return out

    def layer_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled features of every layer and the final embedding, from one forward pass."""
        hidden = self.hidden_states(x)
        feats = {str(i): self.pool(h, i) for i, h in enumerate(hidden)}
        feats["final"] = self.trunk.tail(hidden[-1])
        return feats

    def forward_from(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Embedding from a layer-``layer`` hidden state: the remaining steps, then the tail."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must lie in 0..{self.n_layers - 1}, got {layer}")
        for step in self.trunk.steps[layer + 1 :]:
            hidden = step(hidden)
        return self.trunk.tail(hidden)


class Classifier(nn.Module):
    """An encoder with a linear head: the fine-tuned model, or a frozen encoder + linear probe."""

    def __init__(self, encoder: Encoder, head: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def logits_from(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_from(layer, hidden))


def data_config(backbone: nn.Module) -> dict:
    """The model's own timm preprocessing config (recorded beside our resize-only pipeline);
    for a Hugging Face model, its image processor's settings."""
    if hasattr(backbone, "data_config"):  # repaudit.models.hf.HFBackbone
        return backbone.data_config()
    import timm.data

    cfg = timm.data.resolve_model_data_config(backbone)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def build_encoder(
    spec: ModelSpec,
    *,
    state_dict: Mapping | None = None,
    pooling: str = "auto",
    seed: int = 0,
) -> Encoder:
    """Backbone + preprocessing (mean/std from the timm data config or the Hugging Face image
    processor, resize to ``input_size``)."""
    backbone = create_backbone(spec, state_dict=state_dict, seed=seed)
    if hasattr(backbone, "normalisation"):  # repaudit.models.hf.HFBackbone
        mean, std = backbone.normalisation()
    else:
        cfg = data_config(backbone)
        mean, std = cfg["mean"], cfg["std"]
    return Encoder(backbone, spec.input_size, mean, std, pooling=pooling).eval()


def build_classifier(encoder: Encoder, head_state: Mapping) -> Classifier:
    """Attach a linear head stored as ``{"weight": (C, D), "bias": (C,)}``."""
    weight = head_state["weight"]
    head = nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict(dict(head_state))
    return Classifier(encoder, head).eval()


def load_encoder(
    spec: ModelSpec, weights: str | None = None, *, pooling: str = "auto", seed: int = 0
) -> tuple[Encoder, dict | None]:
    """The encoder of one stage, and its linear head if the checkpoint has one.

    ``weights`` is a checkpoint written by this pipeline (zoo pretraining or fine-tuning);
    without it, ``checkpoint`` rows read their own file (a URL's verified cached copy, see
    :mod:`repaudit.models.checkpoints`) and ``hub``/``random`` rows build directly.
    """
    from repaudit.io import load_checkpoint
    from repaudit.models.checkpoints import resolve

    if weights is None and spec.weights == "zoo":
        raise ValueError(f"{spec.model_id}: zoo models need the pipeline's pretrained.pt")
    path = weights or (resolve(spec.checkpoint)[0] if spec.weights == "checkpoint" else None)
    payload = load_checkpoint(path) if path else {}
    # pipeline weights replace a seeded init; an hf row rebuilds its own architecture first
    keep = weights is None or spec.weights == "hf"
    base = spec if keep else ModelSpec(**{**spec.as_dict(), "weights": "random"})
    encoder = build_encoder(base, state_dict=payload.get("state_dict"), pooling=pooling, seed=seed)
    return encoder, payload.get("head")
