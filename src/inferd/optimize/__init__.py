"""Speed/accuracy tools: evaluation now; quantization, pruning and tuning build on it."""
