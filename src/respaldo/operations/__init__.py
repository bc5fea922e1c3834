"""Operations: backup, restore, verify, init… one module each, each a plain function.

They take typed settings and a progress callback, and know nothing of HTTP or the CLI,
so that the CLI, the scheduler and the API run exactly the same code.
"""
