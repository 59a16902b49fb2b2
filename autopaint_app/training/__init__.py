"""Torch side of AutoPaint: inpainting networks, losses, hole masks, training and ONNX export.

torch is imported only inside this package (ARCHITECTURE.md, habit 9). The package may import
``autopaint_app.core``; core and gui never import it. Importing this package itself has no side
effects and does not import torch: import the submodules (``networks``, ``losses``, ``masks``).
"""
