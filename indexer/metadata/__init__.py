"""Photo metadata: reading what a file states about itself (size, time, camera, place, keywords)."""

from indexer.metadata.read import PhotoInfo, read_keywords_from_xmp, read_photo_info

__all__ = ["PhotoInfo", "read_keywords_from_xmp", "read_photo_info"]
