"""Alembic environment for the Phototag catalog.

The catalog opens its own connection and hands it over (``config.attributes["connection"]``),
so migrations run inside the caller's transaction on the same SQLite file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from indexer.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line: ``alembic -x url=sqlite:///catalog.db upgrade head``
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        with create_engine(url).connect() as connection:
            _run(connection)
            connection.commit()
        return
    _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
