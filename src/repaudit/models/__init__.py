"""Encoders: timm factory, per-layer taps, partial forward, objectives and training loops."""
