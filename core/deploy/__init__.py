"""Exported, torch-free models for live inference (the Pi): bundles and `cis490 export`."""
