"""The compositional task suite (issue 13): families as combinations of parts.

A family is an operation (operations.py: string, number, date, lookup,
classification, extraction or formatting) applied to an input type
(inputs.py) and written in an output format (formats.py: plain, uppercase,
"Answer: X", JSON, a sentence, a table, a list...), described in six styles
composed from the parts' phrases (describe.py). suite.py builds the grid of
combinations as TaskFamily records; splits.py holds out descriptions,
combinations of seen parts, families with unseen parts, and the original
suite's mirror families, under the version SUITE_VERSION.

Import `t2l_vllm.tasks.compositional.splits` (or `.suite`) to build the grid:
this package itself builds nothing at import.
"""
