"""The use cases of ModelManager, one module per area; manager.py composes them."""
