"""Living searches: saved searches and questions, re-run after every published update.

``store`` keeps them in one small file under the data dir, ``check`` re-runs them and says
what is new, ``feed`` writes those changes as an Atom feed. ``python -m rag watch`` and the
app's What's new page are their faces; ``indexing.hooks`` starts ``watch run`` after updates.
"""
