"""Search: the query language (``parse``, its AST and errors). Pure Python: importing it is cheap.

Public surface::

    from indexer.search import parse, walk, format_error, QuerySyntaxError, Tag
    tree = parse('sunset tag:beach -tag:people date:2023-06..2023-08')
    tags = [node for node in walk(tree) if isinstance(node, Tag)]
"""

from indexer.search.query import (
    FIELDS,
    HAS,
    MAX_DEPTH,
    MAX_PHRASES,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    SOURCES,
    STATES,
    TYPE_ALIASES,
    TYPES,
    And,
    Camera,
    DateRange,
    Folder,
    Has,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    SavedSearch,
    Semantic,
    Similar,
    Source,
    State,
    Tag,
    Type,
    Usage,
    format_error,
    parse,
    walk,
)

__all__ = [
    "FIELDS", "HAS", "MAX_DEPTH", "MAX_PHRASES", "MAX_QUERY_LENGTH", "MAX_TERMS", "SOURCES", "STATES", "TYPES",
    "TYPE_ALIASES", "Usage",
    "And", "Camera", "DateRange", "Folder", "Has", "Node", "Not", "Or", "QuerySyntaxError",
    "SavedSearch", "Semantic", "Similar", "Source", "State", "Tag", "Type",
    "format_error", "parse", "walk",
]  # fmt: skip
