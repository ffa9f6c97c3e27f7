"""Metrics from the five seed papers; each module cites its paper and equations."""
