"""plan2flow's runtime: the helpers that generated Prefect flow modules import to run a TaskGraph.

The compiler (``plan2flow.compiler``) never imports this package, so compiling stays Prefect-free.
"""
