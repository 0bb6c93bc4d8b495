"""Finetune Studio: fine-tune language models from the browser, a YAML recipe or the CLI.

Backend modules (no gradio): config, data, models, train, jobs, runs, metrics.
The browser UI lives in studio.ui; the command line in studio.cli.

One process-wide rule is set here, before any library loads: the studio never loads compiled
kernels from the Hub (the `kernels` package), which would be code fetched and run without the user
asking, and a network call where the studio promises to work offline.
- transformers 5 kernelizes every model in `from_pretrained` by default (LigerRMSNorm and others
  on GPUs); its own switch, USE_HUB_KERNELS=NO, turns that off (children inherit it).
- bitsandbytes' CPU backend fetches one *when it is imported* on CPUs with AVX-512-BF16
  (bitsandbytes/backends/cpu/ops.py: `get_kernel`, which first asks the Hub about the publisher),
  and peft imports bitsandbytes whenever it is installed. On a network that accepts connections
  and never answers, that import hung, and with it the UI's background import and every Start
  waiting on it. A None in sys.modules makes `import kernels` fail (and `find_spec` say it is
  absent); bitsandbytes then uses its own kernels, the ones every CPU without AVX-512-BF16 uses and
  the tests run. Its warning about that ("pip install kernels") would only mislead, so it is dropped.
"""

import logging
import os
import sys

os.environ["USE_HUB_KERNELS"] = "NO"
sys.modules.setdefault("kernels", None)
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "from kernels-community" not in record.getMessage())

__version__ = "0.1.0"
