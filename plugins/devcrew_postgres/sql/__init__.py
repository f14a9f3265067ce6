"""PostgreSQL schema migrations, applied in the order of their number prefix."""
