"""Alembic environment for the Phototag catalog.

The catalog opens its own connection and hands it over (``config.attributes["connection"]``),
so migrations run inside the caller's transaction on the same SQLite file. That transaction
(``indexer.catalog.schema_transaction``) holds every revision, DDL included: SQLite can roll back
``CREATE TABLE`` as long as the sqlite3 module does not commit around it, which the catalog's engine
(``indexer.catalog.catalog_engine``) sees to. A failed step leaves the schema as it was before the run.
"""

from __future__ import annotations

from alembic import context

from indexer.catalog import catalog_engine, schema_transaction
from indexer.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line: ``alembic -x url=sqlite:///catalog.db upgrade head``
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        engine = catalog_engine(url)
        try:
            with engine.connect() as connection, schema_transaction(connection):
                _run(connection)
        finally:
            engine.dispose()
        return
    _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead. The connection
    # is already in its transaction, so alembic's begin_transaction() below adds none and commits nothing.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
