"""Test servers shared by the tests and the benchmarks (neither imports the other).

``testkit.eutils_server`` is a local NCBI E-utilities server over real PubMed records, with
faults that can be injected; it never talks to NCBI.
"""
