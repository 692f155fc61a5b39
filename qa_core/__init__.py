"""qa_core: fine-tune, publish and serve domain question answering models.

The library behind `app.py`, `train_job/run.py` and `hub`. Start with `python -m qa_core --help`.
"""

import logging
import warnings

__version__ = "0.1.0"

# bitsandbytes warns on every CPU start that its optional `kernels` package (a Hub download) is
# missing, and on every 8-bit matmul that it casts float32 inputs; neither is actionable.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*inputs will be cast from torch.float32 to float16")
