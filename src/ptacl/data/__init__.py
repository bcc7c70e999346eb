"""Prepared store, datasets and augmentations. Training reads only the store."""
