"""Reference architectures, their training loop and the shipped pretrained weights."""
