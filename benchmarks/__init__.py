"""Speed benchmarks and quality evaluations (``make bench``, ``make eval``)."""
