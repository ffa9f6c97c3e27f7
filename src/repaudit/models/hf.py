"""Hugging Face vision transformers (``transformers.AutoModel``) as repaudit encoders.

A ``weights: hf`` row names a Hugging Face model id (or a local directory written by
``save_pretrained``) in ``architecture`` and the pinned revision (a commit hash) in ``tag``. The
model is wrapped as an :class:`HFBackbone` that splits it into the same trunk as a timm ViT:
step 0 is the patch embedding (with class/register tokens and positions), step l the l-th
transformer block, so layer l equals ``hidden_states[l]`` of ``output_hidden_states=True``
(checked on a random image when the encoder is built) and ``forward_from`` runs the remaining
blocks, as Euclidean convexity (Tětková et al. 2025, arXiv 2305.17154) and the Jacobians need.

Supported are the ViT-style models whose blocks run one after another on the token sequence:
ViT, DeiT, DINOv2 (Oquab et al. 2023, arXiv 2304.07193), BEiT (Bao et al. 2021,
arXiv 2106.08254) and data2vec-vision (Baevski et al. 2022, arXiv 2202.03555), including
BEiT/data2vec's per-block and shared relative position biases.

The final embedding is the model's own pooled output without any head: the CLS token after the
final norm (``global_pool: token``), or the patch-token mean after the pooler's norm for the
mean-pooling BEiT/data2vec configs (``global_pool: avg``). ViT's dense+tanh ``pooler`` belongs
to a pre-training or classification head and is not used (many checkpoints do not ship it).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import nn

from repaudit.models.factory import Trunk

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_KEYS = (
    "image_processor_type",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params


def load_hf_model(
    model_id: str, revision: str = "", kwargs: Mapping | None = None, *, seed: int = 0
) -> nn.Module:
    """``AutoModel.from_pretrained(model_id, revision=revision, **kwargs)``, errors in one line.

    ``kwargs`` update the model config (e.g. ``{"drop_path_rate": 0.0}``). Mean-pooling configs
    (BEiT, data2vec-vision) are built with their pooling layer, whose norm is part of the
    embedding; ``seed`` initialises any weight the checkpoint lacks.
    """
    from transformers import AutoConfig, AutoModel

    where = f"{model_id}@{revision}" if revision else model_id
    try:
        config = AutoConfig.from_pretrained(
            model_id, revision=revision or None, **dict(kwargs or {})
        )
        model_class = AutoModel._model_mapping[type(config)]
        extra = {}
        if _accepts(model_class.__init__, "add_pooling_layer"):
            extra["add_pooling_layer"] = bool(getattr(config, "use_mean_pooling", False))
        torch.manual_seed(seed)
        model = model_class.from_pretrained(
            model_id, revision=revision or None, config=config, **extra
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"hf model {where!r} could not be loaded ({_one_line(err)}); check the id and the "
            "revision in 'tag', or run tools/prefetch_weights.py where the network is reachable"
        ) from None
    return model.eval()


def image_processor_config(model_id: str, revision: str = "") -> dict | None:
    """The model's ``preprocessor_config.json`` (size, crop, mean, std, ...), or None."""
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        config, _ = ImageProcessingMixin.get_image_processor_dict(
            model_id, revision=revision or None
        )
    except OSError:  # the repository has no image processor: ImageNet statistics are used
        return None
    return {k: config[k] for k in PROCESSOR_KEYS if k in config}


class HFBackbone(nn.Module):
    """A transformers ViT-style model as a trunk: embedding, blocks, final norm and pooling.

    Parameters
    ----------
    model : a ``transformers`` vision model with ``embeddings`` and blocks in ``layers`` or
        ``encoder.layer``
    input_size : side length of the images it receives (its relative position biases and
        position embeddings are interpolated when this differs from ``config.image_size``)
    global_pool : ``"auto"`` (mean for ``use_mean_pooling`` configs, else CLS), ``"token"`` or
        ``"avg"``: the pooling of the final embedding, as timm's ``global_pool``
    processor : the image processor's settings, recorded in the feature provenance
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: int,
        global_pool: str = "auto",
        processor: Mapping | None = None,
        source: str = "",
    ) -> None:
        super().__init__()
        self.model = model
        config = model.config
        blocks = getattr(model, "layers", None)
        if blocks is None:
            blocks = getattr(getattr(model, "encoder", None), "layer", None)
        if not isinstance(blocks, nn.ModuleList) or not hasattr(model, "embeddings"):
            raise ValueError(
                f"hf model {source or type(model).__name__!r} ({type(model).__name__}) is not a "
                "ViT-style model (embeddings + transformer blocks); supported: ViT, DeiT, DINOv2, "
                "BEiT, data2vec-vision"
            )
        self.blocks = blocks
        self.input_size = int(input_size)
        self.num_features = int(config.hidden_size)
        if global_pool == "auto":
            global_pool = "avg" if getattr(config, "use_mean_pooling", False) else "token"
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be auto, token or avg, got {global_pool!r}")
        self.global_pool = global_pool
        self.processor = dict(processor) if processor is not None else None
        self.source = source
        patch = config.patch_size
        patch = patch if isinstance(patch, int) else patch[0]
        self.window = (self.input_size // patch,) * 2
        self._interpolate = self.input_size != int(getattr(config, "image_size", self.input_size))
        self._embed_kwargs = (
            {"interpolate_pos_encoding": True}
            if self._interpolate and _accepts(model.embeddings.forward, "interpolate_pos_encoding")
            else {}
        )
        block_forward = blocks[0].forward
        self._block_kwargs = {
            k: v
            for k, v in {
                "resolution": (self.input_size, self.input_size),
                "interpolate_pos_encoding": self._interpolate,
            }.items()
            if _accepts(block_forward, k)
        }
        # Shared relative position bias: BEiT passes it as the attention mask, data2vec-vision
        # as relative_position_bias (transformers' own encoder loops do the same).
        encoder = getattr(model, "encoder", None)
        self._shared_bias = getattr(model, "shared_position_bias", None)
        if self._shared_bias is None and getattr(encoder, "has_relative_position_bias", False):
            self._shared_bias = encoder.relative_position_bias
        self._bias_arg = (
            "relative_position_bias" if _accepts(block_forward, "relative_position_bias") else None
        ) or "attention_mask"
        self.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.has_cls = True

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.embeddings(pixel_values, **self._embed_kwargs)
        return out[0] if isinstance(out, tuple) else out

    def _block(self, index: int):
        block = self.blocks[index]

        def step(hidden: torch.Tensor) -> torch.Tensor:
            kwargs = dict(self._block_kwargs)
            if self._shared_bias is not None:
                kwargs[self._bias_arg] = self._shared_bias(
                    self.window,
                    interpolate_pos_encoding=self._interpolate,
                    dim_size=hidden.shape[1],
                )
            out = block(hidden, **kwargs)
            return out[0] if isinstance(out, tuple) else out

        return step

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm, then the model's pooling (CLS token, or patch mean + pooler norm)."""
        hidden = self.model.layernorm(hidden)
        if self.global_pool == "token":
            return hidden[:, 0]
        pooled = hidden[:, self.num_prefix_tokens :].mean(dim=1)
        norm = getattr(getattr(self.model, "pooler", None), "layernorm", None)
        return norm(pooled) if norm is not None else pooled

    def make_trunk(self) -> Trunk:
        return Trunk(
            steps=[self.embed, *(self._block(i) for i in range(len(self.blocks)))],
            tail=self.head,
            kind="tokens",
            num_prefix_tokens=self.num_prefix_tokens,
            has_cls=self.has_cls,
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(pixel_values)
        for i in range(len(self.blocks)):
            hidden = self._block(i)(hidden)
        return self.head(hidden)

    def data_config(self) -> dict:
        """The image processor's preprocessing (``None`` fields: ImageNet statistics used)."""
        return {"source": self.source, "image_processor": self.processor}

    def normalisation(self) -> tuple[list[float], list[float]]:
        """Mean and std of the image processor, ImageNet's when it has none."""
        proc = self.processor or {}
        if proc.get("do_normalize", True) and proc.get("image_mean") and proc.get("image_std"):
            return list(proc["image_mean"]), list(proc["image_std"])
        if proc.get("do_normalize") is False:
            return [0.0] * 3, [1.0] * 3
        return list(IMAGENET_MEAN), list(IMAGENET_STD)


def verify_trunk(backbone: HFBackbone, *, seed: int = 0, atol: float = 1e-4) -> None:
    """Check that the trunk's layers equal the model's ``output_hidden_states`` on one image.

    The trunk calls the blocks itself (for partial forwards); this guards against a model whose
    forward does more between blocks than the trunk knows about.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, backbone.input_size, backbone.input_size, generator=generator)
    device = next(backbone.parameters()).device
    x = x.to(device)
    kwargs = {"interpolate_pos_encoding": True} if backbone._interpolate else {}
    if not _accepts(backbone.model.forward, "interpolate_pos_encoding"):
        kwargs = {}
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            reference = backbone.model(pixel_values=x, output_hidden_states=True, **kwargs)
            ours = backbone.make_trunk()
            hidden = x
            for i, step in enumerate(ours.steps):
                hidden = step(hidden)
                expected = reference.hidden_states[i]
                if hidden.shape != expected.shape or not torch.allclose(
                    hidden, expected, atol=atol, rtol=1e-4
                ):
                    raise ValueError(
                        f"hf model {backbone.source!r}: layer {i} of the trunk differs from "
                        f"transformers' hidden_states[{i}]; this model type "
                        f"({type(backbone.model).__name__}) is not supported for per-layer taps"
                    )
            final = reference.last_hidden_state
            if backbone.global_pool == "token":
                expected = final[:, 0]
            else:
                expected = reference.pooler_output
                if expected is None:
                    expected = final[:, backbone.num_prefix_tokens :].mean(dim=1)
            if not torch.allclose(ours.tail(hidden), expected, atol=atol, rtol=1e-4):
                raise ValueError(
                    f"hf model {backbone.source!r}: the pooled embedding differs from the model's "
                    "own output; set kwargs global_pool to 'token' or 'avg'"
                )
    finally:
        backbone.train(was_training)


def create_hf_backbone(spec, *, seed: int = 0) -> HFBackbone:
    """The :class:`HFBackbone` of a ``weights: hf`` row (``architecture`` = id, ``tag`` =
    revision); the row's kwargs update the model config, except ``global_pool``."""
    kwargs = dict(spec.kwargs)
    global_pool = kwargs.pop("global_pool", "auto")
    model = load_hf_model(spec.architecture, spec.tag, kwargs, seed=seed)
    processor = image_processor_config(spec.architecture, spec.tag)
    source = f"{spec.architecture}@{spec.tag}" if spec.tag else spec.architecture
    backbone = HFBackbone(
        model, spec.input_size, global_pool=global_pool, processor=processor, source=source
    )
    verify_trunk(backbone, seed=seed)
    return backbone.eval()
