"""Frontends: turn a user's model (torch.fx-traceable module, ONNX file) into a layer graph."""
