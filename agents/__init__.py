"""plan2flow's agents: Prefect Block types that execute the software-factory task types
(``generate_code``, ``validate``, ``test``, ``assemble``, ``package``, ``deploy``).

The compiler refers to them only by block type slug (``plan2flow.compiler.decompose.agents``).
"""
