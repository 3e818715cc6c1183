"""The mobile backbone zoo: one builder, a registry of variants, ImageNet weights that load offline."""

from .builder import ArchDef, Backbone, Classifier, make_head
from .preprocess import Preprocess
from .zoo import REGISTRY, ModelSpec, create_model, describe, get_spec, list_models

__all__ = ["ArchDef", "Backbone", "Classifier", "make_head", "Preprocess", "REGISTRY", "ModelSpec", "create_model",
           "describe", "get_spec", "list_models"]
