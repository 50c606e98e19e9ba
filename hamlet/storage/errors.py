"""Storage-level errors; the API layer maps them at its boundary."""


class StorageError(Exception):
    """The database could not be reached or a statement failed."""


class IntegrityError(StorageError):
    """A uniqueness or foreign-key constraint refused a write."""


class MigrationError(StorageError):
    """A schema migration failed; the database is left at the previous version."""
