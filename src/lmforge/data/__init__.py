"""The data pipeline: sources → normalize → filter → PII → dedup → sample → split →
tokenize → pack."""
