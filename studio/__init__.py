"""Finetune Studio: fine-tune language models from the browser, a YAML recipe or the CLI.

Backend modules (no gradio): config, data, models, train, jobs, runs, metrics.
The browser UI lives in studio.ui; the command line in studio.cli.
"""

__version__ = "0.1.0"
