"""Layer 5, the study: the set builder (mixing), summaries, the report, the documents' numbers, publishing."""
