"""Connection URLs: what the drivers get, and what messages, logs and manifests may show."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from indexing.store.postgres.common import EF_SEARCH, keyword_scoring


def mask_url(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostinfo}" if colon else f"{user}@{hostinfo}"
    query = [
        (key, "***" if key.lower() == "password" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(
        (parts.scheme, netloc, parts.path, urlencode(query, safe="/*,:"), parts.fragment)
    )


def _secrets(url: str) -> list[str]:
    """The URL's password in every form it may be printed in (longest first)."""
    parts = urlsplit(url)
    found = [url]
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [
        v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password"
    ]
    found += [unquote(value) for value in found]
    return sorted({value for value in found if value}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL masked and its password replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, mask_url(url) if secret == url else "***")
    return text


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg) takes it."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_url(url: str, search_path: list[str]) -> str:
    """The URL txtai's SQLAlchemy engines connect with: psycopg 3, our search_path, ef_search."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = f"-c search_path={','.join(search_path)} -c hnsw.ef_search={EF_SEARCH}"
    options = [value for key, value in query if key == "options"]
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", " ".join([*options, ours])))
    return urlunsplit(
        ("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), parts.fragment)
    )


def strip_urls(config: dict[str, Any]) -> dict[str, Any]:
    """txtai's configuration without the connection URLs (what a manifest may store)."""
    clean = {key: value for key, value in config.items() if key not in ("path", "pgcontent")}
    for key in ("pgvector", "scoring"):
        if isinstance(clean.get(key), dict):
            clean[key] = {k: v for k, v in clean[key].items() if k != "url"}
    return clean


def with_urls(config: dict[str, Any], url: str) -> dict[str, Any]:
    """The URL-bearing keys of a configuration (merged over a stored one when loading)."""
    return {
        "pgcontent": {"url": url},
        "pgvector": {**(config.get("pgvector") or {}), "url": url},
        "scoring": {**(config.get("scoring") or keyword_scoring()), "url": url},
    }
