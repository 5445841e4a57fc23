"""Persistence: the SQLAlchemy models, the database engine, migrations and the unified queue."""
