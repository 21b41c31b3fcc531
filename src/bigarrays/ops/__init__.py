"""Whole-dataset operations: pyramids, ..."""
