"""The tetune command line: ``tetune tune | tune-net | compile | run | bench | log | version``.

It sits at the top of the dependency chain and only wires together ``te``, ``schedules``,
``runtime``, ``autotune`` and ``graph``.
"""
