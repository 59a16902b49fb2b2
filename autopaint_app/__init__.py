"""AutoPaint Studio: unsupervised tumour segmentation by self-inpainting."""

__version__ = "0.1.0"
