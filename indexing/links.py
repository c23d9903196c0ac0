"""The one place that builds links to PubMed, DOI and PubMed Central pages.

Every link is built from record fields that may hold any character (a DOI especially), so each
part is percent-encoded here; callers that put a link into HTML still escape it as an attribute.
"""

from __future__ import annotations

import re
from urllib.parse import quote

PUBMED_BASE = "https://pubmed.ncbi.nlm.nih.gov/"
DOI_BASE = "https://doi.org/"
PMC_BASE = "https://pmc.ncbi.nlm.nih.gov/articles/"

_DIGITS = re.compile(r"^\d+$")
# Characters DOIs use that need no encoding in a URL path; everything else is encoded.
_DOI_SAFE = "/:;()._-"


def pubmed_url(pmid: str) -> str:
    """The PubMed page of a PMID, or ``""`` when ``pmid`` is not all digits."""
    return f"{PUBMED_BASE}{pmid}/" if _DIGITS.match(pmid) else ""


def doi_url(doi: str) -> str:
    """``https://doi.org/…`` with the DOI percent-encoded, or ``""`` without a DOI."""
    doi = doi.strip()
    return f"{DOI_BASE}{quote(doi, safe=_DOI_SAFE)}" if doi else ""


def pmc_url(pmcid: str) -> str:
    """The PubMed Central page of a PMC ID (``PMC1234567``), or ``""`` without one."""
    pmcid = pmcid.strip()
    return f"{PMC_BASE}{quote(pmcid)}/" if pmcid else ""
