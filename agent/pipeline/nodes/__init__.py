"""The graph's nodes, one module per stage. Each node takes its dependencies explicitly
(`Deps`), so it can be built and tested alone with a real brain, sandbox and archive."""
