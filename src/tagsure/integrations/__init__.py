"""Thin adapters from batch engines to the tagger: Ray Data (:mod:`.ray`), Spark (:mod:`.spark`).

Each loads the model once per worker and maps a batch of texts to entity rows through
:mod:`tagsure.rows`, the same row logic the streaming ``tagsure predict`` uses.
"""
