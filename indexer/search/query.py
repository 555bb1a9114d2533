"""The search query language: a hand-written tokenizer and recursive-descent parser to an AST.

Pure Python: no SQL, no models. ``parse`` turns what a person types into a tree of frozen
dataclasses; the search engine walks the tree. ``format_error`` draws the caret display used by
``QuerySyntaxError`` and by callers for their own errors about a term (an unknown tag, a missing
``similar:`` file), given the term's ``span``.

Grammar (EBNF; keywords are upper-case only, whitespace separates tokens)::

    query    = or_expr ;
    or_expr  = and_expr , { "OR" , and_expr } ;
    and_expr = unary , { [ "AND" ] , unary } ;             (* adjacent terms are ANDed *)
    unary    = "NOT" , unary                                (* negates the next term, a whole phrase *)
             | "-" , tight                                  (* glued to its term: -tag:cat, -"fog" *)
             | primary ;
    tight    = "-" , tight | WORD | group | atom ;          (* after "-" a single word, not a phrase *)
    primary  = group | phrase | atom ;
    group    = "(" , or_expr , ")" ;
    atom     = QUOTED | field | saved ;
    phrase   = WORD , { WORD } ;                            (* consecutive bare words: one Semantic *)
    field    = NAME , ":" , value ;                         (* NAME: tag similar date camera folder
                                                               type has state source, any case *)
    value    = QUOTED | BARE ;
    saved    = "@" , ( BARE | QUOTED ) ;
    QUOTED   = '"' , { char | '\\"' | '\\\\' } , '"' ;     (* other backslashes are kept as typed *)
    WORD     = a run of characters up to whitespace, "(" or ")" that is not AND, OR or NOT and
               does not start with a field NAME followed by ":" ;
    BARE     = a run of characters up to whitespace or an unbalanced ")" ;

Precedence, tightest first: ``-``, ``NOT``, ``AND`` (explicit or implicit), ``OR``.

Field values:

- ``date:`` ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a range ``A..B`` of those (either end may be
  left open) → ``DateRange(start, end)``: ``start`` is the first day included, ``end`` the first
  day *excluded* (``2023-01..2023-06`` → 2023-01-01 up to 2023-07-01); ``None`` for an open end.
- ``type:`` one of ``TYPES`` (the catalog's lower-case Pillow format names); the aliases
  ``jpg``/``jpe`` → ``jpeg``, ``tif`` → ``tiff``, ``heic``/``hif`` → ``heif`` (``TYPE_ALIASES``),
  case-insensitive, a leading dot ignored.
- ``has:`` one of ``HAS``; ``state:`` one of ``STATES``; ``source:`` one of ``SOURCES`` (any case).
- ``tag:``, ``camera:``, ``similar:``, ``folder:`` and ``@name`` keep the text as typed: the caller
  resolves tags (English or Chinese), matches cameras case-insensitively and expands ``~``.

Text that is not valid Unicode — bytes that are not UTF-8, which a shell hands over as lone surrogates
(``os.fsdecode``) — can be part of a ``folder:`` or ``similar:`` path only (a file name may hold any
bytes; a tag, a camera, free text or a saved search's name cannot), and is shown as ``\\xNN``.

Limits (``MAX_…``, checked as the parser goes, so no query can exhaust the stack, the memory or SQLite):
a query's length, how deeply ``(``, ``NOT`` and ``-`` nest, how many terms and how many phrases it has.
A saved search counts against the limits of the query that uses it (see ``parse``).
"""

from __future__ import annotations

import dataclasses
import difflib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import MAXYEAR, date, timedelta

from indexer._paths import escaped, undecodable, unnameable
from indexer.errors import IndexerError

__all__ = [
    "FIELDS", "HAS", "MAX_DEPTH", "MAX_PHRASES", "MAX_QUERY_LENGTH", "MAX_TERMS", "SOURCES", "STATES", "TYPES",
    "TYPE_ALIASES", "Usage",
    "And", "Camera", "DateRange", "Folder", "Has", "Node", "Not", "Or", "QuerySyntaxError",
    "SavedSearch", "Semantic", "Similar", "Source", "State", "Tag", "Type",
    "format_error", "parse", "walk",
]  # fmt: skip

FIELDS: tuple[str, ...] = ("tag", "similar", "date", "camera", "folder", "type", "has", "state", "source")
TYPES: tuple[str, ...] = ("jpeg", "png", "webp", "heif", "avif", "mpo", "tiff", "gif", "bmp")
TYPE_ALIASES: dict[str, str] = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heic": "heif", "hif": "heif"}
HAS: tuple[str, ...] = ("gps", "date", "camera", "tags", "embedding")
STATES: tuple[str, ...] = ("accepted", "suggested", "rejected")
SOURCES: tuple[str, ...] = ("user", "model", "file")
_KEYWORDS = frozenset({"AND", "OR", "NOT"})

# The limits of a query, far above anything a person types. They also keep the SQL a query becomes within
# SQLite's own limits, whatever its shape: a parser stack of 100 entries (about 16 levels of parenthesised
# conditions), expression trees 1,000 deep, 127 arguments to a function. The largest query of every shape
# is run by tests/indexer/search/test_query_properties.py.
MAX_QUERY_LENGTH = 10_000  # characters (a PATH_MAX path fits twice)
MAX_DEPTH = 10  # levels of "(", NOT and "-" inside one another; a saved search's query is one level below its @name
MAX_TERMS = 256  # terms: tags, filters, phrases and @names, a saved search's counted in
MAX_PHRASES = 32  # free-text phrases and similar: terms (each one a CLIP encoding and a vector search)


# ---------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    """Base of every AST node. ``span`` is the ``[start, end)`` slice of the query the node came from;
    it takes no part in equality, so ``Tag("dog") == parse("tag:dog")``."""

    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class And(Node):
    """All items match. Never nested directly in another ``And``; always two or more items."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    """Any item matches. Never nested directly in another ``Or``; always two or more items."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    """The item does not match."""

    item: Node


@dataclass(frozen=True)
class Semantic(Node):
    """Free text for CLIP text search: a run of bare words, or a quoted phrase."""

    text: str


@dataclass(frozen=True)
class Tag(Node):
    """``tag:NAME``: a tag by name, as typed (English, Chinese or a custom tag)."""

    name: str


@dataclass(frozen=True)
class Similar(Node):
    """``similar:PATH``: photos that look like this one. ``~`` is not expanded here."""

    path: str


@dataclass(frozen=True)
class DateRange(Node):
    """``date:…``: taken on or after ``start`` and before ``end`` (exclusive); ``None`` is open."""

    start: date | None
    end: date | None


@dataclass(frozen=True)
class Camera(Node):
    """``camera:TEXT``: TEXT occurs in the camera make or model (the caller ignores case)."""

    text: str


@dataclass(frozen=True)
class Folder(Node):
    """``folder:PATH``: photos under this folder. ``~`` is not expanded here."""

    path: str


@dataclass(frozen=True)
class Type(Node):
    """``type:FORMAT``: the file format, normalised to one of ``TYPES``."""

    format: str


@dataclass(frozen=True)
class Has(Node):
    """``has:WHAT``: the photo has this piece of data, one of ``HAS``."""

    what: str


@dataclass(frozen=True)
class State(Node):
    """``state:VALUE``: a tag of the photo is in this review state, one of ``STATES``."""

    value: str


@dataclass(frozen=True)
class Source(Node):
    """``source:VALUE``: a tag of the photo came from here, one of ``SOURCES``."""

    value: str


@dataclass(frozen=True)
class SavedSearch(Node):
    """``@NAME``: a saved search, expanded by the caller. ``depth``: the nesting the ``@NAME`` stands at, the
    saved query's starting depth being one more (see ``parse``)."""

    name: str
    depth: int = field(default=0, compare=False, repr=False, kw_only=True)


def walk(node: Node) -> Iterator[Node]:
    """Yield ``node`` and every node below it, parents before children, left to right."""
    yield node
    if isinstance(node, And | Or):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, Not):
        yield from walk(node.item)


# ------------------------------------------------------------------------------------------- errors


def _columns(text: str) -> int:
    """Terminal columns ``text`` takes: CJK and other wide characters take two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _shown(char: str) -> str:
    """One character as messages show it: itself, or an escape when printing it would not show it — a byte
    that is not UTF-8 as ``\\xNN`` (as file names are shown), a control or format character (a line break,
    a terminal escape, a right-to-left override) or any other lone surrogate as ``\\n``, ``\\x1b``,
    ``\\u202e``."""
    if char.isprintable() or unicodedata.category(char) == "Zs":
        return char
    if undecodable(char):  # a byte that is not UTF-8, or another lone surrogate
        return escaped(char)
    return char.encode("unicode_escape").decode("ascii")


def _escaped(text: str) -> str:
    return "".join(map(_shown, text))


_DISPLAY_COLUMNS = 100  # a longer query is shown as the part around the carets, cut with "…"
_CONTEXT_COLUMNS = 30  # of which this much before them


def format_error(query: str, span: tuple[int, int], message: str) -> str:
    """``message``, then the query indented two spaces with carets under ``query[span[0]:span[1]]``.

    An empty span gets a single caret (at the end of the query when it points past it). What would not
    print as itself is escaped (see ``_shown``; whitespace shows as a space), so the message is one line and
    the carets stay under their characters; a query over ``_DISPLAY_COLUMNS`` is cut to the part around them.
    """
    message = _escaped(message)
    if not query.strip():
        return message
    shown = [" " if char.isspace() else _shown(char) for char in query]  # tabs, newlines: one column each
    widths = [_columns(piece) for piece in shown]
    start = min(max(span[0], 0), len(shown))
    end = min(max(span[1], start), len(shown))
    first, last = 0, len(shown)
    if sum(widths) > _DISPLAY_COLUMNS:
        first, room = start, _CONTEXT_COLUMNS
        while first > 0 and widths[first - 1] <= room:
            first -= 1
            room -= widths[first]
        last, room = start, _DISPLAY_COLUMNS - _CONTEXT_COLUMNS + room
        while last < len(shown) and widths[last] <= room:
            room -= widths[last]
            last += 1
    before = "…" if first > 0 else ""
    after = "…" if last < len(shown) else ""
    carets = "^" * max(sum(widths[start:min(end, last)]), 1)
    indent = " " * (_columns(before) + sum(widths[first:start]))
    return f"{message}\n  {before}{''.join(shown[first:last])}{after}\n  {indent}{carets}"


class QuerySyntaxError(IndexerError):
    """A search query cannot be parsed. ``str()`` shows the query with carets under ``token``.

    ``position`` is the offset of ``token`` in ``query``; ``span`` is ``(position, position + len(token))``.
    """

    def __init__(self, message: str, position: int, token: str, query: str = "") -> None:
        super().__init__(message, position, token)
        self.message, self.position, self.token, self.query = message, position, token, query

    @property
    def span(self) -> tuple[int, int]:
        return self.position, self.position + len(self.token)

    def __str__(self) -> str:
        return format_error(self.query, self.span, self.message)


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.65)
    return f" — did you mean '{close[0]}'?" if close else ""


# ---------------------------------------------------------------------------------------- tokenizer

# Token kinds.
_LPAREN, _RPAREN, _AND, _OR, _NOT, _MINUS = "(", ")", "AND", "OR", "NOT", "-"
_WORD, _QUOTED, _FIELD, _SAVED, _ERROR = "word", "quoted", "field", "saved", "error"


@dataclass(frozen=True)
class _Token:
    kind: str
    start: int
    end: int
    text: str = ""  # WORD, QUOTED: the text; FIELD: the field name as typed; SAVED: the name
    value: str = ""  # FIELD: the value, unquoted
    value_start: int = 0  # FIELD, SAVED: where the value starts in the query (its opening quote if quoted)
    error: QuerySyntaxError | None = None


class _Lexer:
    """Splits a query into tokens. A lexical error (an unterminated quote) becomes an ``_ERROR``
    token, so the parser reports errors in the order they occur in the query."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        query = self.query
        while True:
            while self.pos < len(query) and query[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(query):
                return out
            try:
                out.append(self._token())
            except QuerySyntaxError as error:
                out.append(_Token(_ERROR, error.position, error.position + len(error.token), error=error))
                return out

    def _token(self) -> _Token:
        query, start = self.query, self.pos
        char = query[start]
        if char in "()":
            self.pos += 1
            return _Token(_LPAREN if char == "(" else _RPAREN, start, self.pos)
        if char == "-":
            self.pos += 1
            return _Token(_MINUS, start, self.pos)
        if char == '"':
            text = self._quoted()
            return _Token(_QUOTED, start, self.pos, text=text)
        if char == "@":
            self.pos += 1
            value_start = self.pos
            name = self._value()
            return _Token(_SAVED, start, self.pos, text=name, value_start=value_start)
        field = self._field_name()
        if field is not None:
            self.pos += len(field) + 1
            value_start = self.pos
            value = self._value()
            return _Token(_FIELD, start, self.pos, text=field, value=value, value_start=value_start)
        while self.pos < len(query) and not query[self.pos].isspace() and query[self.pos] not in "()":
            self.pos += 1
        word = query[start : self.pos]
        return _Token(word if word in _KEYWORDS else _WORD, start, self.pos, text=word)

    def _field_name(self) -> str | None:
        """The field name when the text at ``pos`` is ``NAME:`` (ASCII letters, digits, ``_``)."""
        query, end = self.query, self.pos
        if not (query[end].isascii() and (query[end].isalpha() or query[end] == "_")):
            return None
        while end < len(query) and query[end].isascii() and (query[end].isalnum() or query[end] == "_"):
            end += 1
        return query[self.pos : end] if end < len(query) and query[end] == ":" else None

    def _value(self) -> str:
        """A field or saved-search value: quoted, or bare up to whitespace or an unbalanced ``)``."""
        query = self.query
        if self.pos < len(query) and query[self.pos] == '"':
            return self._quoted()
        start, depth = self.pos, 0
        while self.pos < len(query) and not query[self.pos].isspace():
            char = query[self.pos]
            if char == ")":
                if depth == 0:
                    break
                depth -= 1
            elif char == "(":
                depth += 1
            self.pos += 1
        return query[start : self.pos]

    def _quoted(self) -> str:
        """The text of the quoted string at ``pos``; ``\\"`` and ``\\\\`` are escapes, other
        backslashes (Windows paths) stay as typed."""
        query, start = self.query, self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(query):
            char = query[self.pos]
            if char == "\\" and self.pos + 1 < len(query) and query[self.pos + 1] in '"\\':
                out.append(query[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise QuerySyntaxError(
            "unterminated quote (close it with '\"'; write \\\" for a quote inside)", start, query[start:], self.query
        )


# ------------------------------------------------------------------------------------------- parser


@dataclass
class Usage:
    """The terms and phrases a query has used of ``MAX_TERMS`` and ``MAX_PHRASES``. A query and the saved
    searches it uses share one, so that together they stay within the limits."""

    terms: int = 0
    phrases: int = 0


def parse(query: str, *, usage: Usage | None = None, depth: int = 0) -> Node:
    """Parse a search query into its AST. Raises ``QuerySyntaxError`` when it is malformed or past a limit.

    A caller expanding a saved search (``@NAME``) parses its query with the ``usage`` of the query that uses
    it (a fresh one by default) and at ``depth`` one more than the ``SavedSearch`` node's."""
    return _Parser(query, usage or Usage(), depth).parse()


class _Parser:
    def __init__(self, query: str, usage: Usage, depth: int) -> None:
        self.query = query
        self.usage = usage
        self.depth = depth  # levels of "(", NOT and "-" around the token being parsed
        if len(query) > MAX_QUERY_LENGTH:  # before reading it at all
            raise QuerySyntaxError(f"query too long: {len(query):,} characters (the most is {MAX_QUERY_LENGTH:,})",
                                   MAX_QUERY_LENGTH, query[MAX_QUERY_LENGTH:], query)
        self.tokens = _Lexer(query).tokens()
        self.index = 0

    # -- token access

    def _peek(self) -> _Token | None:
        if self.index >= len(self.tokens):
            return None
        token = self.tokens[self.index]
        if token.error is not None:
            raise token.error
        return token

    def _next(self) -> _Token:
        token = self._peek()
        assert token is not None
        self.index += 1
        return token

    def _error(self, message: str, start: int, end: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, start, self.query[start:end], self.query)

    def _token_error(self, message: str, token: _Token) -> QuerySyntaxError:
        return self._error(message, token.start, token.end)

    @staticmethod
    def _starts_term(token: _Token | None) -> bool:
        return token is not None and token.kind in (_LPAREN, _NOT, _MINUS, _WORD, _QUOTED, _FIELD, _SAVED)

    # -- limits and text

    def _nest(self, token: _Token) -> None:
        """One level deeper, at a "(", NOT or "-": past ``MAX_DEPTH``, an error before the parser recurses on."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._token_error(_TOO_DEEP, token)

    def _term(self, node: Node) -> Node:
        """``node``, a term, counted against ``MAX_TERMS`` and ``MAX_PHRASES``, its text checked."""
        self.usage.terms += 1
        if self.usage.terms > MAX_TERMS:
            raise self._error(f"too many terms: the most is {MAX_TERMS} (tags, filters, phrases and @names, "
                              "with those of the saved searches used)", *node.span)
        if isinstance(node, Semantic | Similar):
            self.usage.phrases += 1
            if self.usage.phrases > MAX_PHRASES:
                raise self._error(f"too many phrases: the most is {MAX_PHRASES} runs of free words, quoted phrases "
                                  "and similar: terms (each is an image search of its own)", *node.span)
        self._check_text(node)
        return node

    def _check_text(self, node: Node) -> None:
        """A path (``folder:``, ``similar:``) may hold any bytes but NUL; any other term must be Unicode text: a
        lone surrogate (a byte that is not UTF-8, as ``os.fsdecode`` gives it) can match no tag, camera or
        phrase, so it is an error at the character rather than a search that cannot find anything."""
        path = isinstance(node, Folder | Similar)
        for at in range(*node.span):
            char = self.query[at]
            if path and (char == "\0" or unnameable(char)):
                raise self._error(f"a file name cannot hold '{_shown(char)}'", at, at + 1)
            if not path and undecodable(char):
                raise self._error(f"'{_shown(char)}' is not UTF-8 text: bytes like it can be part of a folder: or "
                                  "similar: path only (was the query typed in another encoding?)", at, at + 1)

    # -- grammar

    def parse(self) -> Node:
        if not self.query.strip():
            raise QuerySyntaxError("empty query: type some words, or a filter such as tag:dog", 0, "", self.query)
        if self.depth > MAX_DEPTH:  # a saved search's query, nested too deeply already
            raise self._error(_TOO_DEEP, 0, len(self.query))
        node = self._or_expr()
        token = self._peek()
        if token is not None:  # only a stray ")" stops an or_expr early
            raise self._token_error(_UNMATCHED, token)
        return node

    def _or_expr(self) -> Node:
        items = [self._and_expr()]
        while (token := self._peek()) is not None and token.kind == _OR:
            self._next()
            if not self._starts_term(self._peek()):
                raise self._token_error("'OR' needs a term on its right", token)
            items.append(self._and_expr())
        return _combine(Or, items)

    def _and_expr(self) -> Node:
        token = self._peek()
        if token is not None and token.kind in (_AND, _OR):
            raise self._token_error(f"'{token.kind}' needs a term on its left", token)
        if token is not None and token.kind == _RPAREN:  # only at the start: elsewhere a term is checked for first
            raise self._token_error(_UNMATCHED, token)
        assert token is not None
        items = [self._unary()]
        while True:
            token = self._peek()
            if token is not None and token.kind == _AND:
                self._next()
                if not self._starts_term(self._peek()):
                    raise self._token_error("'AND' needs a term on its right", token)
                items.append(self._unary())
            elif self._starts_term(token):
                items.append(self._unary())
            else:
                return _combine(And, items)

    def _unary(self) -> Node:
        token = self._peek()
        assert token is not None
        if token.kind == _NOT:
            self._next()
            if not self._starts_term(self._peek()):
                raise self._token_error("'NOT' needs a term on its right", token)
            self._nest(token)
            item = self._unary()
            self.depth -= 1
            return Not(item, span=(token.start, item.span[1]))
        if token.kind == _MINUS:
            return self._minus()
        return self._primary()

    def _minus(self) -> Node:
        token = self._next()
        following = self._peek()
        if following is None or following.start != token.end or following.kind not in (
            _MINUS, _LPAREN, _WORD, _QUOTED, _FIELD, _SAVED,
        ):  # fmt: skip
            raise self._token_error("'-' must be glued to the term it excludes, as in -tag:cat or -\"fog\"", token)
        self._nest(token)
        if following.kind == _MINUS:
            item = self._minus()
        elif following.kind == _WORD:  # "-dog beach" excludes dog, not the phrase "dog beach"
            self._next()
            item = self._term(Semantic(following.text, span=(following.start, following.end)))
        else:
            item = self._primary()
        self.depth -= 1
        return Not(item, span=(token.start, item.span[1]))

    def _primary(self) -> Node:
        token = self._next()
        kind = token.kind
        if kind == _LPAREN:
            following = self._peek()
            if following is None:
                raise self._token_error("unclosed '(' (add a ')')", token)
            if following.kind == _RPAREN:
                raise self._error("empty parentheses", token.start, following.end)
            self._nest(token)
            node = self._or_expr()
            closing = self._peek()
            if closing is None:
                raise self._token_error("unclosed '(' (add a ')')", token)
            self._next()
            self.depth -= 1
            return dataclasses.replace(node, span=(token.start, closing.end))
        if kind == _WORD:
            words, end = [token.text], token.end
            while (following := self._peek()) is not None and following.kind == _WORD:
                self._next()
                words.append(following.text)
                end = following.end
            return self._term(Semantic(" ".join(words), span=(token.start, end)))
        if kind == _QUOTED:
            if not token.text.strip():
                raise self._token_error("empty phrase (put words between the quotes)", token)
            return self._term(Semantic(token.text, span=(token.start, token.end)))
        if kind == _SAVED:
            if not token.text.strip():
                raise self._token_error("'@' needs the name of a saved search, as in @holidays", token)
            return self._term(SavedSearch(token.text, span=(token.start, token.end), depth=self.depth))
        if kind == _FIELD:
            return self._term(self._field(token))
        raise AssertionError(f"_primary called on {kind!r}")  # _starts_term guards every call

    def _field(self, token: _Token) -> Node:
        name, value, span = token.text.lower(), token.value, (token.start, token.end)
        value_token = self.query[token.value_start : token.end]
        if name not in FIELDS:
            message = f"unknown field '{token.text}' (known: {', '.join(FIELDS)})"
            raise self._error(message + _suggest(name, FIELDS), token.start, token.start + len(token.text))
        if not value.strip():
            raise self._error(f"'{name}:' needs a value, as in {_EXAMPLES[name]}", token.start, token.end)
        if name == "tag":
            return Tag(value, span=span)
        if name == "similar":
            return Similar(value, span=span)
        if name == "camera":
            return Camera(value, span=span)
        if name == "folder":
            return Folder(value, span=span)
        if name == "date":
            start, end = self._date_range(value_token, token.value_start)
            return DateRange(start, end, span=span)
        choices = {"type": TYPES, "has": HAS, "state": STATES, "source": SOURCES}[name]
        normal = value.strip().lower()
        if name == "type":
            normal = normal.removeprefix(".")
            normal = TYPE_ALIASES.get(normal, normal)
        if normal not in choices:
            known = ", ".join(choices)
            if name == "type":
                known += "; also " + ", ".join(f"{alias} = {full}" for alias, full in TYPE_ALIASES.items())
            aliases = list(TYPE_ALIASES) if name == "type" else []
            message = f"unknown {name}:{value} (known: {known})" + _suggest(normal, [*choices, *aliases])
            raise self._error(message, token.value_start, token.end)
        node_type = {"type": Type, "has": Has, "state": State, "source": Source}[name]
        return node_type(normal, span=span)

    def _date_range(self, raw: str, position: int) -> tuple[date | None, date | None]:
        """``raw`` is the value as typed (maybe quoted) at ``position`` in the query."""
        offset = 0
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw, offset = raw[1:-1], 1
        if ".." not in raw:
            return self._date(raw, position + offset)
        first, second = raw.split("..", 1)
        if not first.strip() and not second.strip():
            raise self._error("a date range needs at least one end, as in 2021.. or ..2020", position,
                              position + len(raw) + 2 * offset)  # fmt: skip
        start = self._date(first, position + offset)[0] if first else None
        end = self._date(second, position + offset + len(first) + 2)[1] if second else None
        if start is not None and end is not None and end <= start:
            raise self._error(f"date range ends before it starts ('{second}' is before '{first}')", position,
                              position + len(raw) + 2 * offset)  # fmt: skip
        return start, end

    def _date(self, text: str, position: int) -> tuple[date, date]:
        """The first day of the period ``text`` names (YYYY, YYYY-MM or YYYY-MM-DD) and the day after its last."""
        forms = "write YYYY, YYYY-MM, YYYY-MM-DD or a range FROM..TO"
        parts, end = text.split("-"), position + len(text)
        if not 1 <= len(parts) <= 3 or any(
            len(part) != size or not part.isascii() or not part.isdigit()
            for part, size in zip(parts, (4, 2, 2), strict=False)
        ):
            raise self._error(f"bad date '{text}' ({forms})", position, end)
        year, month, day = (int(part) for part in parts + ["01"] * (3 - len(parts)))
        if not 1 <= year < MAXYEAR:  # the day after the last day of MAXYEAR is not a date
            raise self._error(f"bad date '{text}': the year must be 0001 to {MAXYEAR - 1}", position, end)
        if not 1 <= month <= 12:
            raise self._error(f"bad date '{text}': month {month} is not 01 to 12", position, end)
        try:
            first = date(year, month, day)
        except ValueError as error:  # a day the month does not have
            raise self._error(f"bad date '{text}': {error}", position, end) from None
        if len(parts) == 1:
            after = date(year + 1, 1, 1)
        elif len(parts) == 2:
            after = date(year + month // 12, month % 12 + 1, 1)
        else:
            after = first + timedelta(days=1)
        return first, after


_UNMATCHED = "unmatched ')' (remove it, or add a '(' before it)"
_TOO_DEEP = f"nested too deeply: more than {MAX_DEPTH} levels of '(', NOT and '-' inside one another (an @name " \
            "counts as one)"
_EXAMPLES = {
    "tag": "tag:dog", "similar": 'similar:"~/Pictures/cat.jpg"', "date": "date:2023-06", "camera": "camera:sony",
    "folder": "folder:~/Pictures/2023", "type": "type:heic", "has": "has:gps", "state": "state:accepted",
    "source": "source:user",
}  # fmt: skip


def _combine(kind: type[And] | type[Or], items: list[Node]) -> Node:
    """One node for ``items`` joined by ``kind``, flattening nested nodes of the same kind."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat), span=(items[0].span[0], items[-1].span[1]))
