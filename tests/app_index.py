"""A small real index for the app's tests, with one hostile record.

A dozen real metapub records (the proton pump inhibitor review among them) embedded with the
offline MiniLM model, plus a copy of that review whose title and abstract carry HTML, script,
Markdown and LaTeX: the app must show all of it as plain text.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from indexing.article import AbstractSection
from tests.conftest import METAPUB_PMIDS
from tests.fixtures_index import RETRACTED_PMID, build_index, parse_samples

# The review that answers QUESTION, and other real records on mixed topics and years.
REAL_PMIDS = (
    RETRACTED_PMID,
    "11618220",
    "23657305",
    "24084238",
    "26415349",
    "29226023",
    "30386702",
    "31588070",
    "32051057",
    "32294727",
    "32496081",
    "35485580",
)
QUESTION = "What are the risks of long-term proton pump inhibitor use?"
HOSTILE_PMID = "99000001"
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_TITLE = f"Proton pump inhibitors {SCRIPT} and kidney risk {IMG}"
HOSTILE_ABSTRACT = (
    f"Long-term proton pump inhibitor use {SCRIPT} carries risks {IMG}. "
    "See [details](javascript:alert(1)) and **bold** claims costing $5 to $10 :red[alert]. "
    "<a href='javascript:alert(3)'>click</a> & <b>unclosed"
)
# What must never reach the page as markup (the same characters escaped are fine).
HOSTILE_MARKERS = ("<script", "<img", "onerror=", "javascript:", "<b>unclosed", "<a href='java")


def app_articles() -> dict:
    """``{pmid: Article}``: the real records and the hostile copy."""
    articles = parse_samples(tuple(METAPUB_PMIDS / f"{pmid}.xml" for pmid in REAL_PMIDS))
    articles[RETRACTED_PMID] = replace(articles[RETRACTED_PMID], retraction_in=("99999999",))
    articles[HOSTILE_PMID] = replace(
        articles[RETRACTED_PMID],
        pmid=HOSTILE_PMID,
        title=HOSTILE_TITLE,
        abstract=(AbstractSection(HOSTILE_ABSTRACT),),
        retraction_in=(),
        doi='10.1000/x"><script>alert(4)</script>',
    )
    return articles


def build_app_index(data_dir: Path) -> dict:
    """Publish the app index into ``data_dir``; returns its articles."""
    articles = app_articles()
    build_index(data_dir, articles)
    return articles
