"""Sub-commands of the ``bigarrays`` command that have grown a module of their own."""
