"""Dataset generators and loaders: images as uint8 (N, H, W, 3), labels as int64 (N,)."""
