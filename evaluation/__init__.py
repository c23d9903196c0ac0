"""Quality on public benchmarks, measured through the product's own indexing and search code.

``python -m rag eval beir`` scores any BEIR-format collection; ``python -m rag eval pubmedqa``
scores PubMedQA (PQA-L, official 500-question test split). Both build a *temporary* index in a
throw-away data directory with :func:`indexing.store.temporary_index` (the product's writer)
and the configured settings (embedder, passage splitting), search it with
:func:`rag.search.search` (hybrid weight, candidate pool, collapse to one hit per article) and
answer with :class:`rag.service.AnswerService` — the code paths of the app, not copies of them.

Every product figure comes with baselines measured in the same run:

* BEIR: plain txtai BM25 (``Embeddings(keyword=True, content=True)``), plain txtai dense
  (``Embeddings(path=<same embedder>, content=True)``) and plain txtai hybrid (``hybrid: true``),
  each indexing whole documents (title + text) in one ``index()`` call, as a txtai user would.
* PubMedQA: the majority class ("yes") of the scored questions.

Metrics (:func:`evaluation.metrics.score_run`), per query then averaged over the queries with at least one
relevant judgment: nDCG@10 with linear gain (``rel / log2(rank + 1)``, as ``trec_eval`` and
BEIR compute it; graded relevance allowed), recall@10 and recall@100 (relevant = score > 0) and
MRR@10. The @10 figures come from a search with ``limit=10`` (what a user asking for ten
articles gets); recall@100 from a separate search with ``limit=100``, because the product's
candidate pool, and so the fused ranking, depends on the limit.

How a yes/no/maybe label is read from a generated answer (:func:`evaluation.pubmedqa.read_label`), chosen to be
robust for a 135M model that does not follow format instructions reliably but does copy the
worked example's opening ("No. In a randomized trial ..."):

1. the answer's first word, ignoring case, markup and punctuation, if it is yes, no or maybe;
2. otherwise the first of the whole words yes / no / maybe / unclear / uncertain /
   inconclusive in the first sentence (the last three read as "maybe");
3. otherwise no label: the answer counts as wrong and as ``unparsed``.

An abstention has no label and counts as wrong too; ``accuracy_answered`` leaves abstentions
out. The product's prompts are used unchanged: the eval measures the answers users get.

Modules: :mod:`~evaluation.metrics` (IR metrics), :mod:`~evaluation.product` (the temporary
product index), :mod:`~evaluation.beir`, :mod:`~evaluation.pubmedqa` (answers and the support
checker), :mod:`~evaluation.machine` (where a figure was measured) and :mod:`~evaluation.cli`
(the ``eval`` command group that ``python -m rag`` adds). ``rag`` and ``indexing`` never import
this package.
"""
