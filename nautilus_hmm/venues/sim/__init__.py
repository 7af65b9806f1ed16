"""The in-process simulated venue: matching engine, paper account, venue adapter."""
