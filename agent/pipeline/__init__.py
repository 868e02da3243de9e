"""The research pipeline: the LangGraph graph and its state, the runner that starts and resumes
it, the per-idea stage wrapper, progress, and each idea's work folder. Stages are in `nodes/`."""
