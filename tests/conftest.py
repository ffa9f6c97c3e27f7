import os

# Deterministic, quiet CPU runs everywhere in the tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TIMM_FUSED_ATTN", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see workflow/rules/common.smk
