"""Alembic's environment for the lab: the engine comes from the lab (``db.migrate``) or from ``-x url=…``."""

from alembic import context
from sqlalchemy import create_engine

from esante.harness.server.models import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(context.get_x_argument(as_dictionary=True)["url"])

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
