"""Data for fine-tuning and calibration: load -> pre-process -> dataloader (HuggingfaceContainer)."""
