"""Room and rate mappings (mappings/*.yaml): the language, its checks and what it derives."""

from channelmgr.mapping.loader import load_mappings
from channelmgr.mapping.model import MappingSet, PropertyMapping

__all__ = ["MappingSet", "PropertyMapping", "load_mappings"]
