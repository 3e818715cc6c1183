"""Dataset layer: scan a folder of class folders, decode images, split stably, check for problems."""

from .dataset import Dataset, Sample, scan
from .images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb
from .split import SPLITS, SplitSpec

__all__ = ["Dataset", "Sample", "scan", "IMAGE_EXTENSIONS", "ImageDecodeError", "load_rgb", "SPLITS", "SplitSpec"]
