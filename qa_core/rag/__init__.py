"""Retrieval-augmented QA over your documents: chunking, embeddings, Chroma, retrieval, answers.

Start with `python -m qa_core.rag --help`.
"""

# When to retrieve: before answering, or with the question plus the model's own draft answer.
MODES = ("retrieve-then-answer", "answer-then-retrieve")
