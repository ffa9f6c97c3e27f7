#!/usr/bin/env python
"""Write the small, seeded data the worked examples in config/examples/ run on.

    python tools/make_example_data.py                # data/examples/{embeddings,images}
    python tools/make_example_data.py --out /tmp/ex --n-samples 600 --seed 1

``<out>/embeddings`` is an embeddings folder (dataset kind ``embeddings``, config/README.md):
``samples.tsv`` (id, label, split; string labels) and three models of two layers each,
``early.npy`` and ``final.npy`` (N x D, rows in samples.tsv order), with a ``manifest.yaml``.
All three see the same latent classes through their own random maps, at different widths and
noise levels; ``model_b`` is stored as float16. ``<out>/images`` is an image folder (kind
``imagefolder``): one sub-folder per class of small PNGs, a shape per class drawn in a random
colour, size and position on a noisy background.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross")
# width of early and final layer, noise of the final layer, storage dtype, manifest
MODELS = {
    "model_a": (24, 32, 0.3, np.float32, {"family": "cnn", "objective": "supervised"}),
    "model_b": (32, 48, 0.5, np.float16, {"family": "vit", "objective": "supervised"}),
    "model_c": (16, 24, 0.8, np.float32, {"family": "vit", "objective": "simclr"}),
}


def make_embeddings(out: Path, *, n_samples: int = 300, seed: int = 0) -> Path:
    """An embeddings folder of ``n_samples`` rows (3 models x 2 layers) under ``out``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % len(CLASSES)
    split = np.where(rng.random(n_samples) < 0.25, "test", "train")
    centres = 2.0 * rng.standard_normal((len(CLASSES), 8))
    latent = centres[labels] + rng.standard_normal((n_samples, 8))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "samples.tsv", "w") as f:
        f.write("id\tlabel\tsplit\n")
        for i in range(n_samples):
            f.write(f"item_{i:04d}\t{CLASSES[labels[i]]}\t{split[i]}\n")
    for name, (d_early, d_final, noise, dtype, meta) in MODELS.items():
        folder = out / name
        folder.mkdir(exist_ok=True)
        # early: the latent plus nuisance directions; final: a nonlinear map of the latent alone
        nuisance = rng.standard_normal((n_samples, 4)) * 2.0
        early = np.hstack([latent, nuisance]) @ rng.standard_normal((12, d_early))
        final = np.tanh(latent @ rng.standard_normal((8, d_final)) / 3.0)
        final += noise * rng.standard_normal(final.shape)
        np.save(folder / "early.npy", early.astype(dtype))
        np.save(folder / "final.npy", final.astype(dtype))
        manifest = {"name": f"example {name}", "modality": "vision", "pooling": "mean", **meta}
        (folder / "manifest.yaml").write_text("".join(f"{k}: {v}\n" for k, v in manifest.items()))
    return out


def make_images(out: Path, *, per_class: int = 20, size: int = 32, seed: int = 0) -> Path:
    """An image folder of ``per_class`` PNGs per shape class under ``out``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            background = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            image = Image.fromarray(background)
            draw = ImageDraw.Draw(image)
            r = rng.uniform(0.2, 0.35) * size
            cx, cy = rng.uniform(r, size - r, 2)
            colour = tuple(int(c) for c in rng.integers(120, 256, 3))
            box = (cx - r, cy - r, cx + r, cy + r)
            if name == "circle":
                draw.ellipse(box, fill=colour)
            elif name == "square":
                draw.rectangle(box, fill=colour)
            elif name == "triangle":
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            else:
                w = max(1, round(r / 2.5))
                draw.line([(cx - r, cy - r), (cx + r, cy + r)], fill=colour, width=w)
                draw.line([(cx - r, cy + r), (cx + r, cy - r)], fill=colour, width=w)
            image.save(out / name / f"{name}_{i:03d}.png")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/examples"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-samples", type=int, default=300, help="rows of the embeddings")
    parser.add_argument("--per-class", type=int, default=20, help="images per class")
    args = parser.parse_args(argv)
    make_embeddings(args.out / "embeddings", n_samples=args.n_samples, seed=args.seed)
    make_images(args.out / "images", per_class=args.per_class, seed=args.seed)
    print(f"wrote {args.out / 'embeddings'} and {args.out / 'images'}")


if __name__ == "__main__":
    main()
