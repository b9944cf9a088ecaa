"""Running cases: the session that puts the stages in order for one item (``session``), the worker process
that runs it on the right thread count (``worker``), and the parent side that starts and talks to it
(``runner``)."""
