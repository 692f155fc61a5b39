"""Everything the toolkit does with the Hugging Face Hub, bottom to top:

- `refs`: what a model, adapter or dataset name points at (a folder, or a Hub `REPO[@REV]`)
- `client`: an `HfApi` for the configured endpoint, retries, one-line errors, one-commit pushes
- `snapshots`: download a model or adapter at an exact commit
- `checkpoints`: the checkpoint record format (write, push, list, resolve a step, pull)
- `publish`: push options, write access, model cards
- `visitor_adapters`: the adapters a Space's visitors may load from the Hub
"""
