"""Conversion-aware fine-tuning of an ANN for a scheme's neurons."""
