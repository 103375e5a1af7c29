"""Training on the Hugging Face Trainer: train, distill and tune verbs."""
