"""Backend adapters, one module per vector store, imported as ``tiering.adapters.<name>``.

Each adapter imports its client library lazily, so installing the matching extra
(``pip install 'vector-tiering[qdrant]'``) is only needed for the stores in use.
"""
