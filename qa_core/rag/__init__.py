"""Retrieval-augmented QA over your documents: the Chroma store, retrieval, grounded answers, evaluation.

Start with `python -m qa_core.rag --help`.
"""

# How to answer: retrieve then write the answer; write a draft, retrieve with it, then answer; or
# quote the retrieved chunks' best sentence with its citation (no model writes anything).
MODES = ("retrieve-then-answer", "answer-then-retrieve", "extractive")
