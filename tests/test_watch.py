"""Living searches: saved searches and questions, re-run after every published update.

The file format is tested on its own (fast); the rest runs over real records: the update
job's base index (20 metapub records behind the local E-utilities server), updates that add
or retract records, and the checks that follow them. One test lets the update start the real
``python -m rag watch run`` child process; the others run the same check in-process.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from indexing import hooks
from indexing.history import RunReport
from indexing.job import update_from_xml, update_queries
from indexing.settings import Settings
from rag.__main__ import cli
from rag.search import Filters
from rag.settings import RagSettings
from rag.watch import store
from rag.watch.check import record
from rag.watch.feed import ATOM
from rag.watch.store import Check, Item, Watch, WatchFileError
from testkit.eutils_server import EutilsServer
from tests.fixtures_pg import BOTH
from tests.test_job import (
    BASE_SIZE,
    TODAY,
    base_index,
    base_indexes,
    ordered,
    published,
    serve_new,
    server,
    settings,
    update_file,
)

__all__ = ["base_index", "base_indexes", "ordered", "server", "settings"]

ATOM_NS = {"atom": ATOM}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def listed() -> list[dict[str, Any]]:
    code, out, err = run("watch", "list", "--json")
    assert code == 0, err
    watches: list[dict[str, Any]] = json.loads(out)["watches"]
    return watches


def title_of(xml: bytes) -> str:
    match = re.search(rb"<ArticleTitle>(.*?)</ArticleTitle>", xml, re.DOTALL)
    assert match
    return match.group(1).decode()


def with_abstracts(records: dict[str, bytes], pmids: list[str]) -> list[str]:
    """The PMIDs among ``pmids`` whose record has an abstract (a title alone is a thin match)."""
    return [pmid for pmid in pmids if b"<AbstractText" in records[pmid]]


def retracted(xml: bytes, notice: str = "99999998") -> bytes:
    """The record as PubMed serves it once retracted: a RetractionIn comment."""
    link = (
        '<CommentsCorrectionsList><CommentsCorrections RefType="RetractionIn">'
        f"<RefSource>Retraction notice</RefSource><PMID>{notice}</PMID>"
        "</CommentsCorrections></CommentsCorrectionsList></MedlineCitation>"
    ).encode()
    new, count = re.subn(rb"</MedlineCitation>", link, xml, count=1)
    assert count == 1
    return new


@pytest.fixture
def checks_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """After each publish, run ``watch run`` in this process instead of a child (faster)."""

    def in_process(settings: Settings, report: RunReport) -> None:
        code, _, err = run("watch", "run", "--quiet")
        assert code in (0, 1), err

    monkeypatch.setattr(hooks, "AFTER_PUBLISH", [in_process])


# --- the file -------------------------------------------------------------------------------


def _watch(watch_id: str = "a1", text: str = "statin myopathy") -> Watch:
    return Watch(watch_id, "search", text, {"year_from": 2018}, "2026-01-01T00:00:00+00:00")


def test_watches_round_trip_and_a_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "watches.json"
    store.change(path, lambda content: content.watches.append(_watch()))

    loaded = store.load(path)

    assert loaded.watches == [_watch()]
    assert loaded.watches[0].search_filters() == Filters(year_from=2018)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watches.json", "watches.json.lock"]


def test_a_file_that_is_not_json_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "watches.json"
    path.write_text('{"watches": [{"id": "a1", "kind": "sea')

    with pytest.raises(WatchFileError, match=r"damaged: not JSON.*left as it is"):
        store.change(path, lambda content: content.watches.append(_watch("b2")))

    assert path.read_text() == '{"watches": [{"id": "a1", "kind": "sea'


def test_a_damaged_entry_is_kept_verbatim_and_the_others_still_work(settings_env: Path) -> None:
    path = settings_env / "watches.json"
    path.parent.mkdir(parents=True)
    broken = {"id": "zz", "kind": "poem", "text": 7}
    bad_filters = {
        "id": "yy",
        "kind": "search",
        "text": "x",
        "filters": {"year_from": 9, "year_to": 1},
    }
    good = _watch().to_dict()
    path.write_text(json.dumps({"format": 1, "watches": [broken, good, bad_filters]}))

    store.change(path, lambda content: content.watches.append(_watch("b2", "other")))

    loaded = store.load(path)
    assert [watch.id for watch in loaded.watches] == ["a1", "b2"]
    assert loaded.damaged == [broken, bad_filters]
    code, out, err = run("watch", "list", "--json")
    assert code == 0 and json.loads(out)["damaged"] == 2 and "2 damaged" in err


def test_history_per_watch_is_bounded(tmp_path: Path) -> None:
    watch = _watch()
    for number in range(30):
        watch = record(watch, Check(f"2026-01-{number + 1:02d}", f"v{number}", ("1",)), 5)

    assert [check.index_version for check in watch.checks] == [f"v{n}" for n in range(25, 30)]


def test_filters_this_version_does_not_know_are_ignored() -> None:
    watch = Watch("a1", "search", "x", {"mesh": "Humans", "evidence_level": "rct"})

    assert watch.search_filters() == Filters(mesh="Humans")


def test_feed_escapes_record_text_and_parses_as_atom(tmp_path: Path) -> None:
    hostile = Item("12345", "<script>alert(1)</script> & \x07 bell")
    check = Check(
        "2026-02-01T03:00:00+00:00", "v000002", new=(hostile,), newly_retracted=(hostile,)
    )
    watch = Watch("a1", "question", "Does x <b>work</b>?", checks=(check,))
    path = tmp_path / "feed.xml"

    from rag.watch.feed import write_feed

    assert write_feed(path, [watch], tmp_path / "watches.json") == 2

    root = ET.parse(path).getroot()
    assert root.tag == f"{{{ATOM}}}feed"
    titles = [node.text for node in root.findall("atom:entry/atom:title", ATOM_NS)]
    assert titles[0] == "New: <script>alert(1)</script> &  bell (PMID 12345)"
    assert b"<script>" not in path.read_bytes()
    assert {node.get("href") for node in root.findall("atom:entry/atom:link", ATOM_NS)} == {
        "https://pubmed.ncbi.nlm.nih.gov/12345/"
    }


# --- after updates, over real records ------------------------------------------------------


@pytest.fixture
def top5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBMED_RAG_WATCH_TOP_N", "5")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_update_reports_new_matching_records_through_the_watch_run_process(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    top5: None,
) -> None:
    new = with_abstracts(metapub_records, ordered[BASE_SIZE:])[:3]
    code, out, err = run("watch", "add", title_of(metapub_records[new[0]]))
    assert code == 0, err
    watch_id = out.split()[2].rstrip(":")
    baseline = listed()[0]["last_check"]
    assert baseline["baseline"] and len(baseline["top"]) == 5
    serve_new(server, metapub_records, new)

    report = update_queries(settings)  # the real hook: `python -m rag watch run` in a child

    version, _ = published(settings)
    assert report.status == "ok" and report.index_version == version
    [entry] = listed()
    assert entry["id"] == watch_id
    last = entry["last_check"]
    assert last["index_version"] == version and not last["error"] and last["changed"]
    assert new[0] in [item["pmid"] for item in last["new"]]
    assert {item["pmid"] for item in last["new"]} <= set(ordered[:BASE_SIZE]) | set(new)
    # The next update with nothing new publishes nothing, and so checks nothing.
    update_queries(settings)
    assert listed()[0]["last_check"]["index_version"] == version


def test_a_retraction_and_a_questions_cited_set_are_reported(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    top5: None,
    checks_in_process: None,
    tmp_path: Path,
) -> None:
    target = with_abstracts(metapub_records, ordered[:BASE_SIZE])[0]
    title = title_of(metapub_records[target])
    assert run("watch", "add", title)[0] == 0
    assert run("watch", "add", title + "?", "--ask")[0] == 0
    question = listed()[1]
    assert question["kind"] == "question" and target in question["last_check"]["cited"]
    server.replace(retracted(metapub_records[target]), mdat=TODAY)

    report = update_queries(settings)

    assert report.revised == 1
    search, question = listed()
    assert [item["pmid"] for item in search["last_check"]["newly_retracted"]] == [target]
    assert search["last_check"]["new"] == []  # the same articles as before
    assert target in search["last_check"]["retracted"]
    code, out, _ = run("watch", "list")
    assert code == 0 and f"retracted: {title}" in out
    # The feed: one entry per change, each with a stable id and a link to the article.
    feed = tmp_path / "feed.xml"
    code, out, err = run("watch", "feed", str(feed))
    assert code == 0, err
    root = ET.parse(feed).getroot()
    ids = [node.text or "" for node in root.findall("atom:entry/atom:id", ATOM_NS)]
    version, _ = published(settings)
    assert f"urn:pubmed-rag:watch:{search['id']}:{version}:retracted:{target}" in ids
    assert root.find("atom:updated", ATOM_NS) is not None


def test_update_files_trigger_the_checks_too(
    settings: Settings,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    top5: None,
    checks_in_process: None,
    tmp_path: Path,
) -> None:
    [new] = with_abstracts(metapub_records, ordered[BASE_SIZE:])[:1]
    assert run("watch", "add", title_of(metapub_records[new]))[0] == 0
    files = tmp_path / "updatefiles"
    files.mkdir()
    path = update_file(files / "pubmed99n0001.xml.gz", [metapub_records[new]])

    report = update_from_xml([path], settings)

    assert (report.status, report.added) == ("ok", 1)
    last = listed()[0]["last_check"]
    assert last["index_version"] == report.index_version
    assert new in [item["pmid"] for item in last["new"]]


def test_a_failing_watch_or_hook_never_fails_the_update(
    settings: Settings,
    server: EutilsServer,
    metapub_records: dict[str, bytes],
    ordered: list[str],
    top5: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    new = with_abstracts(metapub_records, ordered[BASE_SIZE:])[:2]
    assert run("watch", "add", title_of(metapub_records[new[0]]))[0] == 0
    assert run("watch", "add", "proton pump inhibitors")[0] == 0
    path = settings.watches_path
    data = json.loads(path.read_text())
    data["watches"].append({"id": "bad", "kind": "search"})  # a damaged entry
    path.write_text(json.dumps(data))
    good, broken = (entry["id"] for entry in listed())

    # One watch whose check raises, then a hook that raises outright.
    from rag.watch import check

    real_search = check.search_watch

    def flaky(service: Any, index: Any, watch: Watch, top_n: int) -> Any:
        if watch.id == broken:
            raise RuntimeError("injected failure")
        return real_search(service, index, watch, top_n)

    monkeypatch.setattr(check, "search_watch", flaky)

    outcomes: list[tuple[int, str]] = []

    def in_process(settings: Settings, report: RunReport) -> None:
        code, _, err = run("watch", "run")
        outcomes.append((code, err))
        raise RuntimeError(f"watch run: exit code {code}")

    def exploding(settings: Settings, report: RunReport) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hooks, "AFTER_PUBLISH", [in_process, exploding])
    serve_new(server, metapub_records, new)

    with caplog.at_level(logging.WARNING, logger="indexing.hooks"):
        report = update_queries(settings)

    version, _ = published(settings)
    assert (report.status, report.added, report.index_version) == ("ok", 2, version)
    [(code, err)] = outcomes
    assert code == 1 and f"watch {broken} failed: RuntimeError: injected failure" in err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("in_process failed" in w and "unaffected" in w for w in warnings)
    assert any("exploding failed: disk full" in w for w in warnings)
    by_id = {entry["id"]: entry for entry in listed()}
    assert new[0] in [item["pmid"] for item in by_id[good]["last_check"]["new"]]
    assert "injected failure" in by_id[broken]["last_check"]["error"]
    assert {"id": "bad", "kind": "search"} in json.loads(path.read_text())["watches"]


def test_watch_remove_forgets_one_and_says_so_for_an_unknown_id(
    settings: Settings, top5: None
) -> None:
    assert run("watch", "add", "proton pump inhibitors", "--mesh", "Humans")[0] == 0
    [entry] = listed()
    assert entry["filters"] == {"mesh": "Humans"}

    assert run("watch", "remove", "nope")[0] == 2
    code, out, _ = run("watch", "remove", entry["id"])

    assert code == 0 and "removed" in out and listed() == []


def test_watch_run_writes_the_feed_named_by_the_setting(
    settings: Settings, top5: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "feeds" / "whats-new.xml"
    monkeypatch.setenv("PUBMED_RAG_WATCH_FEED", str(feed))
    assert RagSettings().watch_feed == feed
    assert run("watch", "add", "proton pump inhibitors")[0] == 0

    code, _, err = run("watch", "run")

    assert code == 0 and "1 checked" in err
    assert ET.parse(feed).getroot().tag == f"{{{ATOM}}}feed"


def test_a_watch_stores_only_the_filters_that_constrain_something() -> None:
    from rag.search import Filters
    from rag.watch.store import filters_dict

    assert filters_dict(Filters()) == {}
    assert filters_dict(Filters(evidence=("rct",), year_from=2020)) == {
        "year_from": 2020,
        "evidence": ("rct",),
    }
