"""Recommendation domain: RecSim NG interest evolution (TensorFlow loads only when an env is built)."""
