"""Speed/accuracy tools: evaluation and export now; quantization, pruning, tuning build on them."""
