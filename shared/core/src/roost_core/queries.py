"""Every SQL statement named once, in ``.sql`` files shipped inside the package.

A file holds named blocks, each a name line, at least one comment line saying what the
statement does, and the statement (Procrastinate keeps its queries the same way)::

    -- release_holds --
    -- Frees the concurrency units the given attempts hold.
    DELETE FROM rate_limit_holds h
    USING unnest(%(task_run_ids)b::uuid[], %(attempts)b::int[]) AS v(id, a)
    WHERE h.task_run_id = v.id AND h.attempt = v.a
    RETURNING 1;

Parameters are named (``%(name)s``, bound from a dict). An array parameter is bound in
binary (``%(name)b::type[]``): psycopg dumps a list in text format element by element in
Python, escaping each one, which cost the engine's many parallel arrays eight times the
CPU of the binary format (issue #17; a test keeps it so). A block may take in a fragment
written once for several statements with ``{{fragment_name}}``, substituted at load.

Files are read once, at import; modules bind the statements they use to module
constants (``_RELEASE = SQL.release_holds``), so an unknown name fails when the module
is imported, and running a statement costs nothing more than a constant would.
"""

from __future__ import annotations

import re
from importlib import resources

from roost_core.errors import RoostError

_NAME = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)
_INCLUDE = re.compile(r"\{\{([a-z][a-z0-9_]*)\}\}")

#: Every set of statements loaded, so a test can check that each statement is used.
LOADED: list[Queries] = []


class QueryFileError(RoostError):
    """A ``.sql`` file of named statements is malformed: a duplicate or unknown name, a
    block without its comment, or text outside any block."""


class UnknownQueryError(QueryFileError, AttributeError):
    """No statement has the name asked for."""


class Queries:
    """The named statements of a package's ``.sql`` files: ``SQL.name`` or
    ``SQL["name"]``; an unknown name raises :class:`UnknownQueryError`."""

    def __init__(self, files: dict[str, str]) -> None:
        self._statements: dict[str, str] = {}
        self._where: dict[str, str] = {}
        for source, text in files.items():
            for name, statement in _blocks(source, text):
                if name in self._statements:
                    raise QueryFileError(
                        f"statement {name!r} named twice: in {self._where[name]} and {source}"
                    )
                self._statements[name] = statement
                self._where[name] = source
        self._used: set[str] = set()
        #: Names other statements take in with ``{{name}}`` (fragments, mostly).
        self.included: frozenset[str] = frozenset(
            m.group(1)
            for statement in self._statements.values()
            for m in _INCLUDE.finditer(statement)
        )
        for name, statement in list(self._statements.items()):
            self._statements[name] = _INCLUDE.sub(self._include, statement)

    def _include(self, match: re.Match[str]) -> str:
        # A fragment may take in fragments of its own, wherever they are written.
        return _INCLUDE.sub(self._include, self[match.group(1)])

    def __getitem__(self, name: str) -> str:
        try:
            statement = self._statements[name]
        except KeyError:
            raise UnknownQueryError(f"no SQL statement named {name!r}") from None
        self._used.add(name)
        return statement

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    @property
    def names(self) -> frozenset[str]:
        """Every statement's name."""
        return frozenset(self._statements)

    @property
    def unused(self) -> frozenset[str]:
        """Names no module has asked for (yet: modules ask when imported)."""
        return frozenset(self._statements) - self._used

    def source(self, name: str) -> str:
        """The file ``name`` is written in."""
        return self._where[name]


def _blocks(source: str, text: str) -> list[tuple[str, str]]:
    parts = _NAME.split(text)
    if parts[0].strip():
        raise QueryFileError(f"{source}: text before the first named statement")
    blocks: list[tuple[str, str]] = []
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        if not lines or not lines[0].startswith("-- "):
            raise QueryFileError(f"{source}: statement {name!r} has no comment saying what it does")
        sql = "\n".join(line for line in lines if not line.startswith("--")).strip()
        if not sql:
            raise QueryFileError(f"{source}: statement {name!r} is empty")
        blocks.append((name, sql.removesuffix(";")))
    return blocks


def load(package: str, folder: str) -> Queries:
    """The statements of every ``.sql`` file in ``folder`` of ``package``."""
    directory = resources.files(package).joinpath(*folder.split("/"))
    files = {
        f"{package}/{folder}/{f.name}": f.read_text(encoding="utf-8")
        for f in sorted(directory.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".sql")
    }
    if not files:
        raise QueryFileError(f"no .sql files in {package}/{folder}")
    queries = Queries(files)
    LOADED.append(queries)
    return queries


#: The engine core's statements (``roost_core/sql/queries/*.sql``).
SQL = load("roost_core", "sql/queries")
