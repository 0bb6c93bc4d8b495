"""Finetune Studio: fine-tune language models from the browser, a YAML recipe or the CLI.

Backend modules (no gradio): config, data, models, train, jobs, runs, metrics.
The browser UI lives in studio.ui; the command line in studio.cli.

One process-wide rule is set here, before any library loads: the studio never loads compiled
kernels from the Hub (the `kernels` package). bitsandbytes' CPU backend reaches for one *when it
is imported* on CPUs with AVX-512-BF16 (bitsandbytes/backends/cpu/ops.py: `get_kernel`, which
first asks the Hub about the publisher). peft imports bitsandbytes whenever it is installed, so
every process that imports the training stack made a Hub request: on a network that accepts
connections and never answers, that import hung, and with it the UI's background import and
every Start waiting on it; where the Hub answers, code downloaded at import would run without
the user asking. A None in sys.modules makes `import kernels` fail and `find_spec` say it is
absent; bitsandbytes then uses its own kernels, the ones every CPU without AVX-512-BF16 uses and
the tests run. Its warning about that ("please make sure you pip install kernels") would only
mislead a user, so it is dropped.
"""

import logging
import sys

sys.modules.setdefault("kernels", None)
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "from kernels-community" not in record.getMessage())

__version__ = "0.1.0"
