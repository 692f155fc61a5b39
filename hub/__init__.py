"""Publish and retrieve models on the Hugging Face Hub: checkpoints, pulls, merges, pushes.

Start with `python -m hub --help`. Every remote call takes the endpoint and token from
`qa_core.config.Settings` (HF_ENDPOINT / HF_TOKEN, or --hub-endpoint / --hub-token).
"""
