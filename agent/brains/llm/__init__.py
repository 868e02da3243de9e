"""The LLM brain: any OpenAI-compatible endpoint behind the `Brain` interface, with structured
output, retries, a cost ledger and budget, a record/replay cache, and its prompts."""
