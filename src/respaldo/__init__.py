"""respaldo: backup and disaster recovery for PostgreSQL and the files of its applications."""

__version__ = "0.1.0"
