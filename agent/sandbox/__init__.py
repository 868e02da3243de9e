"""The sandbox: bubblewrap around every piece of LLM-written code, under limits the code cannot
change (`runner.run`), and the executors that run it here or on a Ray cluster."""
