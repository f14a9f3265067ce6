"""The workflow engine: definition loading, DAG validation, scheduling and execution."""
