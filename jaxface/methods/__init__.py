"""The four papers' methods, each a module implementing the trainer's method protocol."""
