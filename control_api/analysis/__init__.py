"""Post-call analysis (docs/campaigns.md): data-collection extraction and success scoring from the transcript.

- `fields`: the fields to extract, their JSON schema and type checks — pure.
- `request`: the prompt, the function the model calls, reading its answer — pure.
- `extract`: one analysis against a `LanguageModel`, with timeout and retries.
- `service`: `PostCallAnalysis`, which runs analyses in the background; storage in `control_api.storage.analysis`.
"""
