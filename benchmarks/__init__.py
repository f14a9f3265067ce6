"""devcrew benchmarks: each figure is reported beside a floor measured in the same run."""
