"""Personal learning: what a person teaches Phototag on top of the models' tags.

* ``corrections``: accept, reject and add tags by hand (the decisions an index pass never undoes);
* ``custom_tags``: a person's own tags, defined by descriptions and/or example photos, scored with CLIP;
* ``review``: the photos where a person's answer teaches the most, most uncertain first;
* ``finetune``: learn from the corrections, and activate the result only if it does better;
* ``hooks``: ``after_store``, what the index pass runs on each stored batch (custom tags, then the
  active personal model).

The dependency is one-way: this package uses the library (``indexer.catalog``, ``indexer.schema``,
``indexer.index``'s helpers), and the index pass knows nothing of it. The indexer calls it through its one
extension point, ``Indexer(..., after_store=[hooks.after_store])`` (``indexer.index.AfterStore``), which
whoever builds an Indexer passes: the CLI's ``index`` and ``watch`` (``indexer.cli``) and the app
(``gui.library.Library.index``).
"""
