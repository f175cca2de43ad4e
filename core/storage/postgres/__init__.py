"""The PostgreSQL store (`IM_DATABASE_URL=postgresql://...`), for several `im serve` replicas on
one database. Needs the `postgres` extra (psycopg 3 and its pool): `pip install './[postgres]'`
in a clone."""

from im.storage.postgres.database import PostgresStore

__all__ = ["PostgresStore"]
