"""Domain vocabulary shared by every layer: enums, instrument ids, instruments, orders and fills."""
