"""Datasets: Wine, digits, MNIST (IDX), any IDX folder or .npz file."""
