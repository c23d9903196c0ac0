"""A module a tampered index configuration names: importing it is the failure under test.

``tests/test_postgres.py`` checks that loading an index never imports it.
"""

IMPORTED = True


class Hostile:
    """Would be instantiated by txtai as a content store, ANN backend, scoring or vectors."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("txtai instantiated a class named by the stored configuration")
