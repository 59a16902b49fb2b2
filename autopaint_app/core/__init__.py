"""Headless core: numpy, scipy, SimpleITK, scikit-image, pydicom, onnxruntime. Never Qt or torch."""
