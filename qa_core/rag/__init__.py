"""Retrieval-augmented QA over your documents: chunking, embeddings, Chroma, retrieval, answers.

Start with `python -m qa_core.rag --help`.
"""
