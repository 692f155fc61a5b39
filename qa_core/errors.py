"""Exception classes. Every error a user can cause derives from `QAError`.

Command-line tools and the app catch `QAError` and show its one-line message instead of a
traceback; anything else is a bug and keeps its traceback.
"""


class QAError(Exception):
    """A problem with the user's input, settings or environment, with a message that says which."""


class SettingsError(QAError, ValueError):
    """A setting has a value the toolkit cannot use."""


class PromptError(QAError, ValueError):
    """A prompt cannot be built: unknown style, missing chat template, or too long for the model."""


class DataError(QAError, ValueError):
    """A QA data file or dataset is malformed; the message names the file, row and column."""


class ModelLoadError(QAError):
    """A model or adapter cannot be loaded (not found, no access, unsupported quantization ...)."""


class ServerError(QAError):
    """The inference server cannot be reached, or refused or failed a request; says which and why."""


class IngestError(QAError):
    """One file cannot be ingested; the message says which and why."""


class EmbeddingError(QAError):
    """The embedding model cannot be found or loaded, or does not match a collection."""


class StoreError(QAError):
    """The vector store cannot be opened or used (bad collection name, server unreachable ...)."""


class CollectionError(StoreError):
    """A collection cannot be published or pulled: the repo is not one, its format or embedder does
    not match, or a file is damaged; the message says which, and nothing was loaded."""


class RefError(QAError, ValueError):
    """A name is neither an existing path nor a Hub repo id."""


class HubError(QAError):
    """A Hub operation failed; the message says which repo, what happened and what to do."""


class AdapterRefused(QAError):
    """A visitor's adapter is not loaded: not a Hub repo name, not an adapter, or too large."""


class MergeError(QAError):
    """The merge was refused or its result does not match the adapter-attached model."""


class DeployError(QAError):
    """A Space cannot be deployed or rehearsed: a bad option, a secret not set, a file too large, a
    Space of another SDK, or a rehearsed Space that does not install, start or answer."""
