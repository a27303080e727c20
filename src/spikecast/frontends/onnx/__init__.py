"""ONNX frontend: the ONNX graph rebuilt as torch modules, then captured like any module."""
