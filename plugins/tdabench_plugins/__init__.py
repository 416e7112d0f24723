"""tdabench's built-in methods, each module a plugin registered through the ``tdabench``
entry-point group, exactly as a third-party package would register its own."""
