"""The paper: LaTeX assembly, compilation in the sandbox and repair, BibTeX, result tables, figure
captions from the template's declarations, and the faithfulness check that every printed number
comes from the results."""
