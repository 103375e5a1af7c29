"""The task prompt formats, one spelling each, shared by training, evaluation and serving, so a
model fine-tuned on a format is evaluated and served with that same format."""

from __future__ import annotations

# `train --task summarization` teaches `document + SUMMARY_CUE + summary + <|endoftext|>`; a
# summary ends at its first newline (or the end-of-text token).
SUMMARY_CUE = "\nTL;DR:\n"
SUMMARY_TEMPLATE = "{document}" + SUMMARY_CUE
# Zero-shot label scoring: log P(" " + label | template with the text filled in).
CLASSIFY_TEMPLATE = "Text: {text}\nCategory:"


def summary_prompt(document: str, template: str = SUMMARY_TEMPLATE) -> str:
    """The text a summarizer continues with the summary of `document`."""
    return template.replace("{document}", document)


def classify_prompt(text: str, template: str = CLASSIFY_TEMPLATE) -> str:
    """The context a label's words are scored after."""
    return template.replace("{text}", text)


def label_continuation(label: str) -> str:
    """A label's words as the model sees them after the prompt: one leading space, as in
    running text, so the label's first word is a whole-word token."""
    return " " + label.strip()
